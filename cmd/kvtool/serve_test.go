package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/vfs"
)

// lockedBuffer is a strings.Builder safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// inProcessServer is `kvtool serve` running in a goroutine of the test.
type inProcessServer struct {
	addr           string
	stdout, stderr *lockedBuffer
	stop           context.CancelFunc
	code           chan int
}

// startServe runs `kvtool serve --json --listen 127.0.0.1:0 args...` in
// process and waits for its listening line.
func startServe(t *testing.T, args ...string) *inProcessServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &inProcessServer{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, stop: cancel, code: make(chan int, 1)}
	e := env{stdin: strings.NewReader(""), stdout: s.stdout, stderr: s.stderr, fs: vfs.Default}
	go func() {
		s.code <- execute(ctx, append([]string{"kvtool", "serve", "--json", "--listen", "127.0.0.1:0"}, args...), e)
	}()
	t.Cleanup(func() { s.shutdown(t) })
	deadline := time.Now().Add(60 * time.Second)
	for s.addr == "" {
		select {
		case code := <-s.code:
			s.code <- code
			t.Fatalf("serve exited %d before listening:\n%s%s", code, s.stdout, s.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not print its address:\n%s%s", s.stdout, s.stderr)
		}
		line, _, _ := strings.Cut(s.stdout.String(), "\n")
		var l listeningJSON
		if json.Unmarshal([]byte(line), &l) == nil {
			s.addr = l.ListenAddr
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

// shutdown cancels the server's context (as SIGINT does) and returns its
// exit code.
func (s *inProcessServer) shutdown(t *testing.T) int {
	s.stop()
	select {
	case code := <-s.code:
		s.code <- code
		return code
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop:\n%s", s.stderr)
		return -1
	}
}

func TestServeInProcess(t *testing.T) {
	data := filepath.Join(t.TempDir(), "new")
	s := startServe(t, "--data", data, "--shards", "4", "--segment-size", "1MiB", "--log-level", "debug")
	c := client.New(s.addr)
	defer c.Close()
	ctx := t.Context()
	if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Txn(ctx, client.AddOp("n", 5)); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Shards != 4 || st.AppliedIndex != 2 || st.DataDir != data {
		t.Fatalf("status %+v, %v", st, err)
	}
	if code := s.shutdown(t); code != exitOK {
		t.Fatalf("serve exited %d:\n%s", code, s.stderr)
	}
	lines := strings.Split(strings.TrimSpace(s.stdout.String()), "\n")
	if len(lines) != 2 || lines[1] != `{"event":"stopped","applied_index":2}` {
		t.Errorf("stdout %q, want the listening and stopped lines", lines)
	}
	logs := s.stderr.String()
	for _, want := range []string{"msg=listening", "msg=\"shutting down\"", "msg=stopped", `route="PUT /v1/kv/{key...}"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	// What was acknowledged is there after the restart, on --data directly.
	if out, _ := kvMust(t, exitOK, "", "get", "--data", data, "n"); out != "5" {
		t.Errorf("after restart n = %q, want 5", out)
	}
}

func TestServeHumanOutput(t *testing.T) {
	data := t.TempDir()
	var out lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"kvtool", "serve", "--data", data, "--listen", "127.0.0.1:0"},
			env{stdin: strings.NewReader(""), stdout: &out, stderr: io.Discard, fs: vfs.Default})
	}()
	for !strings.Contains(out.String(), "\n") {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d", code)
	}
	want := fmt.Sprintf("serving %s on http://127.0.0.1:", data)
	if !strings.HasPrefix(out.String(), want) || !strings.Contains(out.String(), "stopped cleanly at applied index 0") {
		t.Errorf("stdout %q, want %q... and the stop line", out.String(), want)
	}
}

func TestServeSecondProcessLocked(t *testing.T) {
	data := t.TempDir()
	startServe(t, "--data", data)
	_, stderr := kvMust(t, exitFailure, "", "serve", "--data", data, "--listen", "127.0.0.1:0")
	if !strings.Contains(stderr, fmt.Sprintf("holder: pid %d", os.Getpid())) {
		t.Errorf("second serve: stderr %q, want the holder's pid", stderr)
	}
}

func TestServeUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--shards", "0"}, "--shards must be between 1 and 4096"},
		{[]string{"--segment-size", "1KiB"}, "--segment-size must be at least 64KiB"},
		{[]string{"--segment-size", "12K"}, "ambiguous unit"},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--log-format", "xml"}, `--log-format "xml"`},
		{[]string{"--shutdown-timeout", "0s"}, "--shutdown-timeout must be more than 0"},
		{[]string{"--maintenance-share", "0"}, "--maintenance-share must be between 0.05 and 1"},
		{[]string{"--maintenance-share", "1.5"}, "--maintenance-share must be between 0.05 and 1"},
		{[]string{"--maintenance-share", "NaN"}, "--maintenance-share must be between 0.05 and 1"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		data := filepath.Join(t.TempDir(), "d")
		_, stderr := kvMust(t, exitUsage, "", append([]string{"serve", "--data", data}, c.args...)...)
		if !strings.Contains(stderr, c.want) {
			t.Errorf("%v: stderr %q, want %q", c.args, stderr, c.want)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("%v created the data directory", c.args)
		}
	}
}

func TestServeListenError(t *testing.T) {
	s := startServe(t, "--data", t.TempDir())
	_, stderr := kvMust(t, exitFailure, "", "serve", "--data", t.TempDir(), "--listen", s.addr)
	if !hasErrorLine(stderr, "listen on "+s.addr) || !strings.Contains(stderr, "--listen") {
		t.Errorf("stderr %q", stderr)
	}
}

func TestServeClusterUsageErrors(t *testing.T) {
	const members = "n1=127.0.0.1:7080,n2=127.0.0.1:7081,n3=127.0.0.1:7082"
	for _, c := range []struct {
		args   []string
		secret string
		want   string
	}{
		{[]string{"--node", "n1"}, "", "--node n1 needs --cluster"},
		{[]string{"--cluster", members}, "", "--cluster needs --node NAME"},
		{[]string{"--peer-listen", "127.0.0.1:7080"}, "", "--peer-listen needs --node NAME"},
		{[]string{"--cluster-token", "prod"}, "", "--cluster-token needs --node NAME"},
		{[]string{"--node", "n4", "--peer-listen", "127.0.0.1:7083", "--join-cluster", "127.0.0.1:7070", "--cluster-token", "prod"}, "", "--cluster-token is for the founding members"},
		{[]string{"--node", "n4", "--cluster", members}, "", "--node n4 is not one of --cluster's members [n1 n2 n3]"},
		{[]string{"--node", "n1", "--cluster", "n1=127.0.0.1"}, "", "--cluster: "},
		{[]string{"--node", "n1", "--cluster", members, "--join", "127.0.0.1:7071"}, "", "cannot also be one"},
		{[]string{"--node", "n1", "--cluster", members}, "short", "needs the members' shared secret"},
		{[]string{"--node", "n1", "--cluster", members, "--listen", "0.0.0.0:7070"}, "a shared secret of the members", "--advertise-api HOST:PORT"},
		{[]string{"--node", "n1", "--cluster", members, "--peer-listen", "nowhere"}, "a shared secret of the members", "--peer-listen nowhere needs HOST:PORT"},
		{[]string{"--node", "n1", "--cluster", members, "--peer-tls-cert", "c.pem"}, "a shared secret of the members", "--peer-tls-cert and --peer-tls-key go together"},
	} {
		t.Setenv("KVTOOL_SECRET", c.secret)
		data := filepath.Join(t.TempDir(), "d")
		_, stderr := kvMust(t, exitUsage, "", append([]string{"serve", "--data", data}, c.args...)...)
		if !strings.Contains(stderr, c.want) {
			t.Errorf("%v: stderr %q, want %q", c.args, stderr, c.want)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("%v created the data directory", c.args)
		}
	}
}
