package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// queryDataDir is a data directory with a base checkpoint, a delta and a
// WAL tail: keys acct:00..acct:09 (index 1..10), a checkpoint, acct:03
// changed and bin (not UTF-8) added (11, 12), a delta, tmp added and
// acct:05 removed (13, 14).
func queryDataDir(t *testing.T) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "kv")
	st, err := store.Open(store.Options{Dir: data, Create: true, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for i := range 10 {
		if _, err := st.Put(ctx, fmt.Sprintf("acct:%02d", i), []byte(fmt.Sprint(100*i))); err != nil {
			t.Fatal(err)
		}
	}
	mustDo := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustDo(st.Checkpoint(ctx))
	mustDo(st.Put(ctx, "acct:03", []byte("-5")))
	mustDo(st.Put(ctx, "bin", []byte{0xff, 0}))
	mustDo(st.Delta(ctx))
	mustDo(st.Put(ctx, "tmp", []byte("x")))
	mustDo(st.Delete(ctx, "acct:05"))
	return data
}

// Every query command only reads: the directory is unchanged after each,
// whether it succeeded or was refused.
func TestQueryCommandOnData(t *testing.T) {
	data := queryDataDir(t)
	before := dirtest.Snapshot(t, data)
	q := func(args ...string) (string, string, int) {
		t.Helper()
		stdout, stderr, code := run(t, append([]string{"query", "--data", data}, args...)...)
		dirtest.RequireUnchanged(t, data, before, "kvtool query "+strings.Join(args, " "))
		return stdout, stderr, code
	}

	stdout, stderr, code := q("SELECT key, value FROM kv WHERE key LIKE 'ACCT:0%' AND CAST(value AS INTEGER) < 300 ORDER BY key DESC")
	mustCode(t, code, exitOK, stdout, stderr)
	want := "KEY      VALUE\nacct:03  -5\nacct:02  200\nacct:01  100\nacct:00  0\n4 rows\n"
	if stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", stdout, want)
	}

	stdout, stderr, code = q("--json", "SELECT key, value, 2.5 AS r, NULL AS n FROM kv WHERE key IN ('bin', 'tmp') ORDER BY key")
	mustCode(t, code, exitOK, stdout, stderr)
	want = `{"key":"bin","value":{"base64":"/wA="},"r":2.5,"n":null}` + "\n" + `{"key":"tmp","value":"x","r":2.5,"n":null}` + "\n"
	if stdout != want {
		t.Errorf("json:\n%s\nwant:\n%s", stdout, want)
	}

	stdout, stderr, code = q("--csv", `SELECT "index", op, key, value, delta FROM wal WHERE "index" >= 11 ORDER BY "index"`)
	mustCode(t, code, exitOK, stdout, stderr)
	want = "index,op,key,value,delta\n11,put,acct:03,-5,-305\n12,put,bin,x'ff00',\n13,put,tmp,x,\n14,del,acct:05,,\n"
	if stdout != want {
		t.Errorf("csv:\n%s\nwant:\n%s", stdout, want)
	}

	// kv_at, the files, the statement from a file and from standard input.
	file := filepath.Join(t.TempDir(), "q.sql")
	os.WriteFile(file, []byte("SELECT value FROM kv_at(10) WHERE key = 'acct:03';\n"), 0o644)
	stdout, stderr, code = q("--file", file, "--quiet")
	mustCode(t, code, exitOK, stdout, stderr)
	if stdout != "VALUE\n300\n" {
		t.Errorf("--file: %q", stdout)
	}
	var out, errw bytes.Buffer
	code = execute(context.Background(), []string{"kvtool", "query", "--data", data, "--json", "-"},
		env{stdin: strings.NewReader("SELECT count(*) AS n FROM checkpoints WHERE base = 1"), stdout: &out, stderr: &errw, fs: vfs.Default})
	mustCode(t, code, exitOK, out.String(), errw.String())
	if out.String() != `{"n":1}`+"\n" {
		t.Errorf("stdin: %q", out.String())
	}
	for _, sql := range []string{"SELECT * FROM segments", "SELECT * FROM deltas", "SELECT * FROM manifest", "SELECT * FROM leases"} {
		stdout, stderr, code = q(sql)
		mustCode(t, code, exitOK, stdout, stderr)
	}

	// Bad SQL and writes exit 2 with SQLite's message or the refusal.
	for sql, msg := range map[string]string{
		"SELEC 1":                      `near "SELEC": syntax error (at line 1, column 1)`,
		"SELECT\n  nope FROM kv":       "no such column: nope (at line 2, column 3)",
		"SELECT * FROM kv_at":          "kv_at needs a log index",
		"DELETE FROM kv":               "queries are read-only: DELETE from kv is refused",
		"ATTACH 'x.db' AS x":           "queries are read-only: ATTACH is refused",
		"SELECT load_extension('x')":   "queries are read-only: load_extension is refused",
		"CREATE TABLE t(x)":            "queries are read-only",
		"PRAGMA query_only = 0":        "queries are read-only",
		"VACUUM INTO '/tmp/kvtool.db'": "queries are read-only",
	} {
		stdout, stderr, code = q(sql)
		mustCode(t, code, exitUsage, stdout, stderr)
		if !strings.Contains(stderr, msg) {
			t.Errorf("%s: stderr %q, want %q", sql, stderr, msg)
		}
	}
	stdout, stderr, code = q("SELECT * FROM kv_at(3)")
	mustCode(t, code, exitFailure, stdout, stderr)
	if !strings.Contains(stderr, "cover indexes 10 to 14") {
		t.Errorf("kv_at(3): %s", stderr)
	}
	for _, args := range [][]string{{}, {"a", "b"}, {"--file", file, "SELECT 1"}, {"--json", "--csv", "SELECT 1"}} {
		stdout, stderr, code = q(args...)
		mustCode(t, code, exitUsage, stdout, stderr)
	}
	stdout, stderr, code = run(t, "query", "--data", filepath.Join(t.TempDir(), "none"), "SELECT 1")
	mustCode(t, code, exitFailure, stdout, stderr)
}

// On a read-only directory, and beside a server holding the directory.
func TestQueryCommandReadOnlyDirAndBesideServer(t *testing.T) {
	data := queryDataDir(t)
	st, err := store.Open(store.Options{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "query", "--data", data, "--csv", "SELECT count(*) FROM kv")
	mustCode(t, code, exitOK, stdout, stderr)
	if stdout != "count(*)\n11\n" {
		t.Errorf("beside a server: %q", stdout)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(data, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			os.Chmod(p, 0o444)
		}
		return nil
	})
	filepath.Walk(data, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			os.Chmod(p, 0o555)
		}
		return nil
	})
	t.Cleanup(func() {
		filepath.Walk(data, func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	before := dirtest.Snapshot(t, data)
	for _, args := range [][]string{
		{"query", "--data", data, "SELECT * FROM kv_at(12) JOIN wal USING (key)"},
		{"diff", "--data", data, "--from-index", "10", "--to-index", "14"},
	} {
		stdout, stderr, code = run(t, args...)
		mustCode(t, code, exitOK, stdout, stderr)
		dirtest.RequireUnchanged(t, data, before, strings.Join(args, " "))
	}
}

func TestDiffCommand(t *testing.T) {
	data := queryDataDir(t)
	before := dirtest.Snapshot(t, data)
	stdout, stderr, code := run(t, "diff", "--data", data, "--from-index", "10", "--to-index", "14")
	mustCode(t, code, exitOK, stdout, stderr)
	want := `CHANGE   KEY      OLD  NEW
changed  acct:03  300  -5
removed  acct:05  500  NULL
added    bin      NULL x'ff00'
added    tmp      NULL x
2 added, 1 changed, 1 removed from index 10 to 14
`
	if norm(stdout) != norm(want) {
		t.Errorf("diff:\n%s\nwant:\n%s", stdout, want)
	}
	stdout, stderr, code = run(t, "diff", "--data", data, "--from-index", "10", "--to-index", "14", "--prefix", "acct:", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	want = `{"change":"changed","key":"acct:03","old":"300","new":"-5"}` + "\n" + `{"change":"removed","key":"acct:05","old":"500"}` + "\n"
	if stdout != want {
		t.Errorf("diff --json:\n%s\nwant:\n%s", stdout, want)
	}
	stdout, stderr, code = run(t, "diff", "--data", data, "--from-index", "14", "--to-index", "11", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.Contains(stdout, `{"change":"removed","key":"bin","old_base64":"/wA="}`) {
		t.Errorf("diff backwards: %s", stdout)
	}
	dirtest.RequireUnchanged(t, data, before, "kvtool diff")
	stdout, stderr, code = run(t, "diff", "--data", data, "--from-index", "2", "--to-index", "14")
	mustCode(t, code, exitFailure, stdout, stderr)
	stdout, stderr, code = run(t, "diff", "--data", data, "--from-index", "10")
	mustCode(t, code, exitUsage, stdout, stderr)
}

// norm squeezes runs of spaces, so a test does not depend on column widths.
func norm(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}

func TestQueryCommandOnAddr(t *testing.T) {
	data := queryDataDir(t)
	st, err := store.Open(store.Options{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(st, server.Options{}))
	t.Cleanup(func() { srv.Close(); st.Close() })
	addr := srv.Listener.Addr().String()
	stdout, stderr, code := run(t, "query", "--addr", addr, "--json", "SELECT key, value, 0.5 AS r FROM kv WHERE key >= 'bin' ORDER BY key")
	mustCode(t, code, exitOK, stdout, stderr)
	want := `{"key":"bin","value":{"base64":"/wA="},"r":0.5}` + "\n" + `{"key":"tmp","value":"x","r":0.5}` + "\n"
	if stdout != want {
		t.Errorf("--addr --json:\n%s\nwant:\n%s", stdout, want)
	}
	stdout, stderr, code = run(t, "query", "--addr", addr, "--max-rows", "3", "SELECT key FROM kv")
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.HasSuffix(stdout, "3 rows\n") || !strings.Contains(stderr, "stopped after 3 rows") {
		t.Errorf("--max-rows: %q %q", stdout, stderr)
	}
	stdout, stderr, code = run(t, "diff", "--addr", addr, "--from-index", "10", "--to-index", "14", "--json", "--prefix", "t")
	mustCode(t, code, exitOK, stdout, stderr)
	if stdout != `{"change":"added","key":"tmp","new":"x"}`+"\n" {
		t.Errorf("diff --addr: %q", stdout)
	}
	for sql, want := range map[string]int{"SELEC 1": exitUsage, "DELETE FROM kv": exitUsage, "SELECT * FROM kv_at(2)": exitFailure} {
		stdout, stderr, code = run(t, "query", "--addr", addr, sql)
		mustCode(t, code, want, stdout, stderr)
	}
	stdout, stderr, code = run(t, "query", "--addr", "127.0.0.1:1", "SELECT 1")
	mustCode(t, code, exitFailure, stdout, stderr)
}

// cancelWriter cancels a context at its first write: Ctrl-C once rows
// have reached the terminal.
type cancelWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancel()
	return w.buf.Write(p)
}

// Rows stream as they are produced (the endless query prints some), and
// Ctrl-C stops the query with exit 130, on --data and on a server.
func TestQueryCommandInterrupt(t *testing.T) {
	data := queryDataDir(t)
	endless := "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x, key FROM c, kv"
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := &cancelWriter{cancel: cancel}
		var errw bytes.Buffer
		code := execute(ctx, append([]string{"kvtool", "query"}, args...), env{stdin: strings.NewReader(""), stdout: out, stderr: &errw, fs: vfs.Default})
		mustCode(t, code, exitInterrupted, out.buf.String(), errw.String())
		if out.buf.Len() == 0 || !strings.Contains(errw.String(), "interrupted") {
			t.Errorf("%v: stdout %d bytes, stderr %q", args, out.buf.Len(), errw.String())
		}
	}
	run("--data", data, endless)
	run("--data", data, "--json", endless)
	st, err := store.Open(store.Options{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(st, server.Options{}))
	t.Cleanup(func() { srv.Close(); st.Close() })
	run("--addr", srv.Listener.Addr().String(), "--json", endless)
}

// Damage met by a query exits 3, naming the file and offset.
func TestQueryCommandDamage(t *testing.T) {
	data := queryDataDir(t)
	seg := filepath.Join(data, "wal", "0000000000000001.wal")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// Entry 12's frame is followed by intact ones: corruption, not a torn tail.
	stdout, stderr, code := run(t, "query", "--data", data, "--csv", `SELECT offset FROM wal WHERE "index" = 12`)
	mustCode(t, code, exitOK, stdout, stderr)
	var off int
	fmt.Sscanf(strings.Split(stdout, "\n")[1], "%d", &off)
	b[off+30] ^= 0xff
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = run(t, "query", "--data", data, `SELECT count(*) FROM wal`)
	mustCode(t, code, exitDamage, stdout, stderr)
	if !strings.Contains(stderr, seg) || !strings.Contains(stderr, fmt.Sprint("offset ", off)) {
		t.Errorf("stderr %q does not name %s and offset %d", stderr, seg, off)
	}
}
