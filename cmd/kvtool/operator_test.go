package main

// Tests of the CLI as an operator uses it at 3 a.m. (issue 9): never the
// wrong store, Ctrl-C that works, errors that say what is wrong.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// runEnv runs kvtool in-process on fsys with ctx and stdin, and returns
// what it printed and its exit code. The environment is the test's.
func runEnv(t *testing.T, ctx context.Context, fsys vfs.FS, stdin io.Reader, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errw bytes.Buffer
	code = execute(ctx, append([]string{"kvtool"}, args...), env{stdin: stdin, stdout: &out, stderr: &errw, fs: fsys})
	return out.String(), errw.String(), code
}

// withFlags inserts flags after the command path of args (its leading
// words without a dash that are not arguments), so that the tests read the
// same on a CLI that takes flags only before arguments.
func withFlags(args []string, n int, flags ...string) []string {
	return append(append(slices.Clone(args[:n]), flags...), args[n:]...)
}

// liveServer starts a kvtool server on a store of its own and returns its
// address and a client of it.
func liveServer(t *testing.T) (string, *client.Client) {
	t.Helper()
	addr := kvTargets(t)["addr"][1]
	c := client.New(addr)
	t.Cleanup(c.Close)
	return addr, c
}

// TestExplicitDataBeatsEnvAddr checks that with KVTOOL_ADDR exported, an
// explicit --data acts on that directory, for every command that can run
// against either, and says so; and that --data with --addr is refused.
func TestExplicitDataBeatsEnvAddr(t *testing.T) {
	addr, c := liveServer(t)
	if _, err := c.Put(t.Context(), "live", []byte("1")); err != nil {
		t.Fatal(err)
	}
	before, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	data := smallDataDir(t)
	t.Setenv("KVTOOL_ADDR", addr)

	out, errOut, code := run(t, "put", "--data", data, "--json", "k", "v")
	mustCode(t, code, exitOK, out, errOut)
	var s storeJSON
	mustJSON(t, out, &s)
	if s.DataDir != data || s.Addr != "" {
		t.Errorf("put --json: %s, want data_dir %s", out, data)
	}
	out, errOut, code = run(t, "put", "--data", data, "k2", "v2")
	mustCode(t, code, exitOK, out, errOut)
	if want := "kvtool: acted on the data directory " + data + " (from --data)"; !strings.Contains(errOut, want) {
		t.Errorf("put: stderr %q, want %q", errOut, want)
	}
	if out, errOut, code = run(t, "get", "--data", data, "k"); code != exitOK || out != "v" {
		t.Errorf("get --data: %d %q %q", code, out, errOut)
	}
	if out, errOut, code = run(t, "scan", "--data", data, "--json"); code != exitOK || !strings.Contains(out, `"k2"`) || strings.Contains(out, "live") {
		t.Errorf("scan --data: %d %q %q", code, out, errOut)
	}
	for _, args := range [][]string{
		{"checkpoint", "create"}, {"delta", "create"}, {"wal", "compact"}, {"delta", "merge"}, {"del", "k2"},
	} {
		out, errOut, code = run(t, append(args, "--data", data, "--json")...)
		mustCode(t, code, exitOK, out, errOut)
		var s storeJSON
		mustJSON(t, out, &s)
		if s.DataDir != data || s.Addr != "" {
			t.Errorf("%v --json: %s, want data_dir %s", args, out, data)
		}
	}
	out, errOut, code = run(t, "transfer", "status", "--data", data, "--json")
	mustCode(t, code, exitOK, out, errOut)
	if !strings.Contains(out, `"data_dir": "`+data+`"`) {
		t.Errorf("transfer status --data: %s", out)
	}
	after, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if after.AppliedIndex != before.AppliedIndex || after.Checkpoint != nil || len(after.Deltas) != 0 || after.WALFirstIndex != before.WALFirstIndex {
		t.Errorf("commands given --data changed the server of KVTOOL_ADDR: %+v -> %+v", before, after)
	}

	// Both flags: which one was meant cannot be guessed.
	for _, args := range [][]string{
		{"put", "--data", data, "--addr", addr, "k", "v"},
		{"--addr", addr, "get", "k", "--data", data},
		{"wal", "compact", "--addr", addr, "--data", data},
	} {
		out, errOut, code = run(t, args...)
		mustCode(t, code, exitUsage, out, errOut)
		if !hasErrorLine(errOut, "drop --data to run against the server, or drop --addr to open the directory") {
			t.Errorf("%v: stderr %q", args, errOut)
		}
	}
	// The variable still works when no flag says otherwise, and says so.
	out, errOut, code = run(t, "put", "k", "v")
	mustCode(t, code, exitOK, out, errOut)
	if !strings.Contains(errOut, "acted on the kvtool server at "+addr+" (from $KVTOOL_ADDR)") {
		t.Errorf("put with KVTOOL_ADDR: stderr %q", errOut)
	}
}

// TestCreateOnlyWhereMeant checks that put and serve never create a store
// among other files or under a missing parent, and put only with --init.
func TestCreateOnlyWhereMeant(t *testing.T) {
	root := t.TempDir()
	missing := filepath.Join(root, "new")
	out, errOut, code := run(t, "put", "--data", missing, "k", "v")
	mustCode(t, code, exitFailure, out, errOut)
	if !hasErrorLine(errOut, "no data directory at "+missing+" (from --data)") || !strings.Contains(errOut, "put --init") {
		t.Errorf("put without --init: stderr %q", errOut)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("put without --init created %s", missing)
	}
	noParent := filepath.Join(root, "typo", "data")
	for _, args := range [][]string{
		{"put", "--init", "--data", noParent, "k", "v"},
		{"serve", "--data", noParent, "--listen", "127.0.0.1:0"},
	} {
		out, errOut, code = run(t, args...)
		mustCode(t, code, exitFailure, out, errOut)
		if !hasErrorLine(errOut, "its parent "+filepath.Dir(noParent)+" does not exist") || out != "" {
			t.Errorf("%v: stdout %q stderr %q", args, out, errOut)
		}
		if _, err := os.Stat(filepath.Dir(noParent)); !os.IsNotExist(err) {
			t.Fatalf("%v created missing parents", args)
		}
	}
	other := filepath.Join(root, "home")
	os.Mkdir(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644)
	snap := dirtest.Snapshot(t, other)
	for _, args := range [][]string{
		{"put", "--init", "--data", other, "k", "v"},
		{"txn", "--init", "--data", other},
		{"serve", "--data", other, "--listen", "127.0.0.1:0"},
	} {
		out, errOut, code = runEnv(t, context.Background(), vfs.Default, strings.NewReader(`{"ops":[{"op":"del","key":"k"}]}`), args...)
		mustCode(t, code, exitFailure, out, errOut)
		if !hasErrorLine(errOut, "refusing to create a store in "+other+" (from --data): the directory holds other files") || out != "" {
			t.Errorf("%v: stdout %q stderr %q", args, out, errOut)
		}
		dirtest.RequireUnchanged(t, other, snap, strings.Join(args, " "))
	}
	out, errOut, code = run(t, "put", "--init", "--data", missing, "k", "v")
	mustCode(t, code, exitOK, out, errOut)
	empty := t.TempDir()
	out, errOut, code = run(t, "put", "--init", "--data", empty, "k", "v")
	mustCode(t, code, exitOK, out, errOut)
	out, errOut, code = run(t, "put", "--data", empty, "k", "w") // a store now: no --init needed
	mustCode(t, code, exitOK, out, errOut)
	if out, _, _ := run(t, "put", "--help"); !strings.Contains(out, "--init") || !strings.Contains(out, "a typo in --data") {
		t.Errorf("put --help does not say why --init: %s", out)
	}
}

// TestGetMissingKeyExitCode checks that a missing key exits 5, a server
// that is down 1, and that get --help says so.
func TestGetMissingKeyExitCode(t *testing.T) {
	for name, target := range kvTargetsSmall(t) {
		out, errOut, code := run(t, kvArgs(target, "get", "nope")...)
		mustCode(t, code, exitNotFound, out, errOut)
		if !hasErrorLine(errOut, `key "nope" not found`) {
			t.Errorf("%s: stderr %q", name, errOut)
		}
	}
	out, errOut, code := run(t, "get", "--addr", "127.0.0.1:1", "k")
	mustCode(t, code, exitFailure, out, errOut)
	out, _, _ = run(t, "get", "--help")
	if !strings.Contains(out, "exits 5") {
		t.Errorf("get --help does not document exit 5:\n%s", out)
	}
	out, _, _ = run(t, "--help")
	if !strings.Contains(out, "5  get: the key does not exist") || !strings.Contains(out, "130") {
		t.Errorf("kvtool --help does not list exit codes 5 and 130:\n%s", out)
	}
}

// TestUsageErrorOneLine checks that a missing required flag is one line
// and a hint on stderr, never the help on stdout (where it would end up in
// `transfer send --data d > kv.xfer`).
func TestUsageErrorOneLine(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	data := smallDataDir(t)
	for _, args := range [][]string{
		{"transfer", "send", "--data", data},
		{"get"},
		{"serve", "--listen", "7070"},
		{"serve", "--data", data, "--transfer-listen", "7071"},
		{"transfer", "recv", "--listen", "localhost", "--data", data},
		{"transfer", "send", "--data", data, "--to", "7071"},
		{"get", "--addr", "7070", "k"},
	} {
		out, errOut, code := run(t, args...)
		mustCode(t, code, exitUsage, out, errOut)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if out != "" || len(lines) != 2 || !strings.HasPrefix(lines[1], "kvtool: hint: ") {
			t.Errorf("%v: stdout %q, stderr %q; want one line and a hint on stderr", args, out, errOut)
		}
	}
	_, errOut, _ := run(t, "transfer", "send", "--data", data)
	if !hasErrorLine(errOut, "kvtool transfer send needs --to HOST:PORT") {
		t.Errorf("stderr %q", errOut)
	}
	_, errOut, _ = run(t, "serve", "--listen", "7070")
	if !hasErrorLine(errOut, "--listen 7070 needs HOST:PORT, e.g. 127.0.0.1:7070") {
		t.Errorf("stderr %q", errOut)
	}
}

// TestFlagsAnywhere checks flags after arguments and --addr before the
// command, with "--" and values that look like flags.
func TestFlagsAnywhere(t *testing.T) {
	addr, c := liveServer(t)
	for _, tc := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"put", "a", "1", "--addr", addr}},
		{"", []string{"--addr", addr, "put", "b", "2"}},
		{`{"ops":[{"op":"put","key":"c","value":"3"}]}`, []string{"txn", "-", "--addr", addr}},
		{"", []string{"put", "neg", "-5", "--addr", addr}},
		{"", []string{"put", "--addr", addr, "--", "dash", "--json"}},
	} {
		out, errOut, code := runEnv(t, context.Background(), vfs.Default, strings.NewReader(tc.stdin), tc.args...)
		mustCode(t, code, exitOK, out, errOut)
	}
	for key, want := range map[string]string{"a": "1", "b": "2", "c": "3", "neg": "-5", "dash": "--json"} {
		out, errOut, code := run(t, "get", key, "--addr", addr)
		mustCode(t, code, exitOK, out, errOut)
		if out != want {
			t.Errorf("get %s = %q, want %q", key, out, want)
		}
	}
	out, errOut, code := run(t, "--addr", addr, "get", "a", "--json")
	mustCode(t, code, exitOK, out, errOut)
	var v valueJSON
	mustJSON(t, out, &v)
	if v.Value == nil || *v.Value != "1" {
		t.Errorf("--addr before get, --json after: %s", out)
	}
	if _, _, err := c.Get(t.Context(), "--addr"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("a flag was stored as a key: %v", err)
	}
}

func TestNormalizeArgs(t *testing.T) {
	app := newApp(env{})
	for _, tc := range []struct{ in, want string }{
		{"get k --addr h:1", "get --addr h:1 k"},
		{"--addr h:1 get k", "get --addr h:1 k"},
		{"--data d --addr h:1 get k --json", "--data d get --addr h:1 --json k"},
		{"txn - --addr h:1", "txn --addr h:1 -"},
		{"put k -5", "put k -5"},
		{"put k v --init", "put --init k v"},
		{"put -- -k --json", "put -- -k --json"},
		{"put --addr=h:1 k v -q", "put --addr=h:1 -q k v"},
		{"wal dump --from 3 --to 4", "wal dump --from 3 --to 4"},
		{"wal --data d list --json", "wal --data d list --json"},
		{"wal verify --bogus", "wal verify --bogus"},
		{"--bogus wal list", "--bogus wal list"},
		{"--dry-run wal repair", "wal repair --dry-run"},
		{"help wal", "help wal"},
		{"frobnicate --json", "--json frobnicate"},
		{"checkpoint inspect F --json", "checkpoint inspect --json F"},
		{"get k -h", "get -h k"},
	} {
		got := strings.Join(normalizeArgs(app, append([]string{"kvtool"}, strings.Fields(tc.in)...))[1:], " ")
		if got != tc.want {
			t.Errorf("normalizeArgs(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestMissingDataDirOneWording checks that every command gives a missing
// data directory the same message, naming where the path came from, with
// the command that creates a store there.
func TestMissingDataDirOneWording(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	data := filepath.Join(t.TempDir(), "nope")
	for _, args := range [][]string{
		{"get", "k"}, {"scan"}, {"del", "k"}, {"put", "k", "v"}, {"txn"},
		{"wal", "list"}, {"wal", "verify"}, {"wal", "compact"}, {"verify"}, {"inspect"}, {"replay"},
		{"checkpoint", "list"}, {"checkpoint", "create"}, {"checkpoint", "verify"},
		{"delta", "list"}, {"delta", "verify"}, {"delta", "create"},
		{"transfer", "send", "--to", "-"}, {"transfer", "status"},
	} {
		out, errOut, code := runEnv(t, context.Background(), vfs.Default, strings.NewReader(`{"ops":[{"op":"del","key":"k"}]}`),
			append([]string{"--data", data}, args...)...)
		mustCode(t, code, exitFailure, out, errOut)
		want := "kvtool: no data directory at " + data + " (from --data)\n" +
			"kvtool: hint: check --data and $KVTOOL_DATA; to create a new store there, run `kvtool --data " + data +
			" serve` or `kvtool --data " + data + " put --init KEY VALUE`\n"
		if errOut != want {
			t.Errorf("%v: stderr\n%s\nwant\n%s", args, errOut, want)
		}
	}
	t.Setenv("KVTOOL_DATA", data)
	_, errOut, _ := run(t, "verify")
	if !hasErrorLine(errOut, "no data directory at "+data+" (from $KVTOOL_DATA)") {
		t.Errorf("stderr %q", errOut)
	}
}

// TestMessagesInUserTerms checks that Go package prefixes and request URLs
// stay out of what the user reads.
func TestMessagesInUserTerms(t *testing.T) {
	data := smallDataDir(t)
	st, err := store.Open(store.Options{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, _ := run(t, "put", "--data", data, "k", "v")
	st.Close()
	if strings.Contains(errOut, "kvtool/") || !strings.Contains(errOut, "holder: pid") {
		t.Errorf("locked: stderr %q", errOut)
	}
	for _, err := range []error{
		fmt.Errorf("open: %w", vfs.ErrLocked),
		errors.New(`kvtool server at h:1: Get "http://h:1/v1/kv/k": interrupt signal received`),
	} {
		if msg := userMessage(err); strings.Contains(msg, "kvtool/") || strings.Contains(msg, "http://") {
			t.Errorf("userMessage(%v) = %q", err, msg)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, errOut, code := runEnv(t, ctx, vfs.Default, strings.NewReader(""), "get", "--addr", srv.Listener.Addr().String(), "k")
	mustCode(t, code, exitInterrupted, "", errOut)
	if strings.Contains(errOut, "http://") || strings.Contains(errOut, "kvtool/") {
		t.Errorf("interrupted get: stderr %q", errOut)
	}
}

// TestWrongAddress points each command that talks to a peer at the wrong
// kind of port, and checks that it says what is there instead.
func TestWrongAddress(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "<html><body>404 page not found</body></html>")
	}))
	defer web.Close()
	webAddr := web.Listener.Addr().String()
	for _, args := range [][]string{{"get", "k"}, {"put", "k", "v"}, {"scan"}, {"checkpoint", "create"}, {"transfer", "status"}} {
		n := 1
		if args[0] == "checkpoint" || args[0] == "transfer" {
			n = 2
		}
		out, errOut, code := run(t, withFlags(args, n, "--addr", webAddr)...)
		mustCode(t, code, exitFailure, out, errOut)
		if !hasErrorLine(errOut, webAddr+" is not a kvtool server (it answered 404 Not Found") ||
			strings.Contains(errOut, "not found (") || strings.Contains(errOut, "<html>") {
			t.Errorf("%v at a web server: stderr %q", args, errOut)
		}
	}

	src := startServe(t, "--data", t.TempDir(), "--transfer-listen", "127.0.0.1:0")
	xaddr := transferAddr(t, src)
	out, errOut, code := run(t, "get", "--addr", xaddr, "k")
	mustCode(t, code, exitFailure, out, errOut)
	if !hasErrorLine(errOut, xaddr+" is not a kvtool server (it is a kvtool transfer port") {
		t.Errorf("get at a transfer port: stderr %q", errOut)
	}

	// serve --join at the source's HTTP API stops, saying what is wrong.
	replica := filepath.Join(t.TempDir(), "replica")
	j := startKvtool(t, nil, "serve", "--data", replica, "--listen", "127.0.0.1:0", "--join", src.addr)
	mustCode(t, j.wait(t), exitFailure, j.stdout.String(), j.stderr.String())
	if !hasErrorLine(j.stderr.String(), src.addr+" is a kvtool HTTP API (kvtool serve --listen); --join needs the source's --transfer-listen address") {
		t.Errorf("serve --join at an HTTP port: stderr %q", j.stderr)
	}

	// transfer send --to an HTTP port, and to a refused port.
	defer func(d time.Duration) { helloTimeout = d }(helloTimeout)
	helloTimeout = 100 * time.Millisecond
	data := smallDataDir(t)
	out, errOut, code = run(t, "transfer", "send", "--data", data, "--to", src.addr)
	mustCode(t, code, exitFailure, out, errOut)
	if !hasErrorLine(errOut, src.addr+" is a kvtool HTTP API (kvtool serve --listen); --to needs the address of `kvtool transfer recv --listen`") ||
		strings.Contains(errOut, "resume") {
		t.Errorf("send to an HTTP port: stderr %q", errOut)
	}
	refused := refusedAddr(t)
	for _, args := range [][]string{
		{"transfer", "send", "--data", data, "--to", refused},
		{"transfer", "send", "--addr", src.addr, "--to", refused},
	} {
		out, errOut, code = run(t, args...)
		mustCode(t, code, exitFailure, out, errOut)
		if !strings.Contains(errOut, "connection refused") || !strings.Contains(errOut, "is `kvtool transfer recv --listen` running there?") ||
			strings.Contains(errOut, "resume") {
			t.Errorf("%v: stderr %q", args, errOut)
		}
	}
}

// refusedAddr returns a loopback address whose connections are refused
// for the whole test: its port is held by a socket that is bound but never
// listens. (A port taken from a listener that is then closed may be
// reused at once by another test's listener running in parallel, which
// accepts or answers where the test wanted a refusal.)
func refusedAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		t.Fatalf("bound socket has address %T", sa)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(in4.Port))
}

// TestServeAnnouncesLast checks that serve prints nothing, and creates
// nothing, before every flag is checked and every listener bound.
func TestServeAnnouncesLast(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", "")
	os.Unsetenv("KVTOOL_SECRET")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--transfer-listen", "127.0.0.1:0"}, exitUsage, "no usable shared secret"},
		{[]string{"--listen", busy.Addr().String()}, exitFailure, "listen on " + busy.Addr().String() + " (--listen)"},
		{[]string{"--listen", "127.0.0.1:0", "--transfer-listen", busy.Addr().String(), "--secret-file", writeSecret(t)},
			exitFailure, "listen on " + busy.Addr().String() + " (--transfer-listen)"},
		{[]string{"--listen", "7070"}, exitUsage, "--listen 7070 needs HOST:PORT"},
	} {
		data := filepath.Join(t.TempDir(), "d")
		args := append([]string{"serve", "--data", data, "--json"}, tc.args...)
		if !slices.Contains(tc.args, "--listen") {
			args = append(args, "--listen", "127.0.0.1:0")
		}
		out, errOut, code := run(t, args...)
		mustCode(t, code, tc.code, out, errOut)
		if out != "" || !hasErrorLine(errOut, tc.want) {
			t.Errorf("%v: stdout %q (want nothing), stderr %q (want %q)", tc.args, out, errOut, tc.want)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("%v created the data directory", tc.args)
		}
	}
}

func writeSecret(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(cliSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// roFS is a read-only mount: every change fails with EROFS.
type roFS struct{ vfs.FS }

func erofs(op, name string) error { return &os.PathError{Op: op, Path: name, Err: syscall.EROFS} }

func (roFS) Create(name string) (vfs.File, error)        { return nil, erofs("open", name) }
func (roFS) OpenReadWrite(name string) (vfs.File, error) { return nil, erofs("open", name) }
func (roFS) Remove(name string) error                    { return erofs("remove", name) }
func (roFS) Rename(o, n string) error                    { return erofs("rename", n) }
func (roFS) MkdirAll(dir string, _ os.FileMode) error    { return erofs("mkdir", dir) }
func (roFS) Lock(name string) (io.Closer, error)         { return nil, erofs("open", name) }

// TestReadOnlyDataDir runs every read-only command on a data directory
// mounted read-only (a backup): they work, and those that lock say they
// read without the lock.
func TestReadOnlyDataDir(t *testing.T) {
	data := smallDataDir(t)
	writeKeys(t, data, 0, 20)
	kvMust(t, exitOK, "", "checkpoint", "create", "--data", data)
	writeKeys(t, data, 20, 5)
	ckpt := onlyCheckpoint(t, data)
	before := dirtest.Snapshot(t, data)
	for _, args := range [][]string{
		{"get", "k0001"}, {"scan"}, {"verify"}, {"inspect"}, {"replay"},
		{"wal", "list"}, {"wal", "dump"}, {"wal", "verify"}, {"wal", "repair", "--dry-run"},
		{"checkpoint", "list"}, {"checkpoint", "inspect", ckpt}, {"checkpoint", "verify"},
		{"delta", "list"}, {"delta", "verify"}, {"transfer", "status"},
	} {
		out, errOut, code := runEnv(t, context.Background(), roFS{vfs.Default}, strings.NewReader(""), append([]string{"--data", data}, args...)...)
		mustCode(t, code, exitOK, out, errOut)
		if (args[0] == "get" || args[0] == "scan") && !strings.Contains(errOut, "read without the lock") {
			t.Errorf("%v: stderr %q, want a note that it reads without the lock", args, errOut)
		}
	}
	dirtest.RequireUnchanged(t, data, before, "read-only commands")
}

// onlyCheckpoint returns the name of the one checkpoint in DATA/snap.
func onlyCheckpoint(t *testing.T, data string) string {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(data, "snap", "*.ckpt"))
	if len(names) != 1 {
		t.Fatalf("checkpoints: %v", names)
	}
	return filepath.Base(names[0])
}

// TestTxnPromptOnTerminal gives txn a terminal as standard input: it says
// it reads a transaction from it; from a pipe it says nothing.
func TestTxnPromptOnTerminal(t *testing.T) {
	master, slave := openPTY(t)
	data := smallDataDir(t)
	go func() {
		master.Write([]byte(`{"ops":[{"op":"put","key":"k","value":"v"}]}` + "\n\x04"))
	}()
	out, errOut, code := runEnv(t, context.Background(), vfs.Default, slave, "txn", "--data", data)
	mustCode(t, code, exitOK, out, errOut)
	if !strings.Contains(errOut, "kvtool: reading a transaction from standard input (Ctrl-D to end)\n") {
		t.Errorf("txn on a terminal: stderr %q", errOut)
	}
	_, errOut = kvMust(t, exitOK, `{"ops":[{"op":"del","key":"k"}]}`, "txn", "--data", data)
	if strings.Contains(errOut, "reading a transaction") {
		t.Errorf("txn from a pipe: stderr %q", errOut)
	}
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// cancelFS cancels a command's context at the first read of a WAL segment,
// checkpoint or delta, and counts the reads that reach it afterwards.
type cancelFS struct {
	vfs.FS
	cancel context.CancelFunc
	fired  atomic.Bool
	after  atomic.Int64 // reads after the cancellation
}

func (c *cancelFS) Open(name string) (vfs.File, error) {
	f, err := c.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return &cancelFile{File: f, fs: c, watched: strings.Contains(name, "/wal/") || strings.Contains(name, "/snap/")}, nil
}

type cancelFile struct {
	vfs.File
	fs      *cancelFS
	watched bool
}

func (f *cancelFile) read() {
	if f.fs.fired.Load() {
		f.fs.after.Add(1)
	} else if f.watched {
		f.fs.fired.Store(true)
		f.fs.cancel()
	}
}

func (f *cancelFile) Read(p []byte) (int, error) { f.read(); return f.File.Read(p) }
func (f *cancelFile) ReadAt(p []byte, off int64) (int, error) {
	f.read()
	return f.File.ReadAt(p, off)
}

// TestInterruptStopsReaders interrupts every long read-only command at its
// first read of a data file, as Ctrl-C does: each stops at once (no read
// after the cancellation reaches the disk), exits 130, and writes nothing.
func TestInterruptStopsReaders(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	st, err := store.Open(store.Options{Dir: data, Create: true, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		if _, err := st.Put(context.Background(), fmt.Sprintf("k%05d", i), bytes.Repeat([]byte("v"), 100)); err != nil {
			t.Fatal(err)
		}
		if i == 1000 {
			if _, err := st.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	before := dirtest.Snapshot(t, data)
	for _, args := range [][]string{
		{"replay"}, {"replay", "--out", filepath.Join(outDir, "pitr.ckpt")}, {"verify"}, {"inspect"},
		{"wal", "list"}, {"wal", "dump"}, {"wal", "verify"}, {"wal", "repair", "--dry-run"},
		{"checkpoint", "verify"}, {"scan"}, {"get", "k00001"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		fsys := &cancelFS{FS: vfs.Default, cancel: cancel}
		out, errOut, code := runEnv(t, ctx, fsys, strings.NewReader(""), append([]string{"--data", data, "--json"}, args...)...)
		cancel()
		if code != exitInterrupted || !hasErrorLine(errOut, "interrupted") {
			t.Errorf("%v: exit %d, stderr %q; want 130 and \"interrupted\"\n%.300s", args, code, errOut, out)
		}
		if !fsys.fired.Load() {
			t.Errorf("%v: read no data file", args)
		}
		if n := fsys.after.Load(); n > 0 {
			t.Errorf("%v: %d reads after the interruption", args, n)
		}
	}
	dirtest.RequireUnchanged(t, data, before, "interrupted commands")
	assertNoFiles(t, outDir) // replay --out wrote nothing, not even a temporary file
}

// TestSignalsCancelThenForce checks main's signal handling: the first
// signal cancels the command's context, the second forces the exit.
func TestSignalsCancelThenForce(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	ctx, cancel := context.WithCancel(context.Background())
	var errw lockedBuffer
	forced := make(chan struct{})
	go watchSignals(sigs, cancel, &errw, func() { close(forced) })
	sigs <- os.Interrupt
	<-ctx.Done()
	select {
	case <-forced:
		t.Fatal("the first signal forced the exit")
	default:
	}
	sigs <- syscall.SIGTERM
	select {
	case <-forced:
	case <-time.After(60 * time.Second):
		t.Fatal("the second signal did not force the exit")
	}
	if s := errw.String(); !strings.Contains(s, "stopping at a safe point") || !strings.Contains(s, "exiting now") {
		t.Errorf("stderr %q", s)
	}
}

// TestServeStopsMaintenanceAtSafePoint interrupts serve during a merge
// slowed to a crawl: it stops promptly (the merge does not run to its
// end), says what it waits for, and leaves the manifest and DATA/snap as
// they were.
func TestServeStopsMaintenanceAtSafePoint(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	st, err := store.Open(store.Options{Dir: data, Create: true, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		for i := range 200 {
			if _, err := st.Put(context.Background(), fmt.Sprintf("k%d-%03d", round, i), []byte("value")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.Delta(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	snap := dirtest.Snapshot(t, filepath.Join(data, "snap"))
	manifest, _ := os.ReadFile(filepath.Join(data, "MANIFEST"))

	// One byte per second: the merge would take hours.
	s := startServe(t, "--data", data, "--merge-after", "2", "--delta-every", "0", "--compact-wal-size", "0",
		"--maintenance-rate", "1", "--log-level", "debug")
	// The merge has started once its temporary file is in DATA/snap.
	waitUntil(t, "the merge to start", func() bool {
		names, _ := os.ReadDir(filepath.Join(data, "snap"))
		return len(names) > len(snap)-1
	})
	if code := s.shutdown(t); code != exitOK {
		t.Fatalf("serve exited %d:\n%s", code, s.stderr)
	}
	logs := s.stderr.String()
	if !strings.Contains(logs, `msg="waiting for maintenance to stop at a safe point" kind=merge`) || strings.Contains(logs, "maintenance failed") {
		t.Errorf("logs:\n%s", logs)
	}
	if m, _ := os.ReadFile(filepath.Join(data, "MANIFEST")); !bytes.Equal(m, manifest) {
		t.Errorf("the interrupted merge changed the manifest")
	}
	dirtest.RequireUnchanged(t, filepath.Join(data, "snap"), snap, "an interrupted merge")
}
