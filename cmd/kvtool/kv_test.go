package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// kvRun runs kvtool in-process with stdin and args; KVTOOL_DATA and
// KVTOOL_ADDR are unset for the call.
func kvRun(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	for _, v := range []string{"KVTOOL_DATA", "KVTOOL_ADDR"} {
		if _, ok := os.LookupEnv(v); ok {
			t.Setenv(v, "")
			os.Unsetenv(v)
		}
	}
	var out, errw bytes.Buffer
	e := env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errw, fs: vfs.Default}
	code = execute(context.Background(), append([]string{"kvtool"}, args...), e)
	return out.String(), errw.String(), code
}

// kvMust runs kvtool and fails unless it exits with want.
func kvMust(t *testing.T, want int, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, code := kvRun(t, stdin, args...)
	mustCode(t, code, want, stdout, stderr)
	return stdout, stderr
}

// kvTargets are the two ways of running a key command: on --data, and
// through a server (started on its own data directory) with --addr.
func kvTargets(t *testing.T) map[string][]string {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Create: true, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(st, server.Options{}))
	t.Cleanup(func() { srv.Close(); st.Close() })
	return map[string][]string{
		"data": {"--data", filepath.Join(t.TempDir(), "d")}, // created by the first write
		"addr": {"--addr", srv.Listener.Addr().String()},
	}
}

// smallDataDir creates an empty data directory whose WAL segment is small:
// every open reads the segment to its preallocated end, which makes the
// default 64MiB slow under -race.
func smallDataDir(t *testing.T) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "d")
	st, err := store.Open(store.Options{Dir: data, Create: true, SegmentSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return data
}

// kvTargetsSmall is kvTargets with the data directory created up front by
// smallDataDir.
func kvTargetsSmall(t *testing.T) map[string][]string {
	t.Helper()
	targets := kvTargets(t)
	targets["data"] = []string{"--data", smallDataDir(t)}
	return targets
}

// kvArgs puts the target flags right after the command name (urfave/cli
// stops parsing flags at the first argument).
func kvArgs(target []string, cmd string, args ...string) []string {
	return append(append([]string{cmd}, target...), args...)
}

func TestKVCommands(t *testing.T) {
	for name, target := range kvTargetsSmall(t) {
		t.Run(name, func(t *testing.T) {
			a := func(cmd string, args ...string) []string { return kvArgs(target, cmd, args...) }
			out, _ := kvMust(t, exitOK, "", a("put", "greeting", "hello")...)
			if out != "committed at index 1\n" {
				t.Errorf("put printed %q", out)
			}
			if out, _ = kvMust(t, exitOK, "", a("get", "greeting")...); out != "hello" {
				t.Errorf("get printed %q, want the raw value", out)
			}
			out, _ = kvMust(t, exitOK, "", a("put", "--json", "a/b", "\xff\x00")...)
			var idx indexJSON
			mustJSON(t, out, &idx)
			if idx.Index != 2 {
				t.Errorf("put --json: %s", out)
			}
			out, _ = kvMust(t, exitOK, "", a("get", "--json", "a/b")...)
			if want := "{\n  \"key\": \"a/b\",\n  \"value_base64\": \"/wA=\",\n  \"applied_index\": 2\n}\n"; out != want {
				t.Errorf("get --json binary:\n%s\nwant\n%s", out, want)
			}
			out, _ = kvMust(t, exitOK, "", a("get", "--json", "greeting")...)
			var v valueJSON
			mustJSON(t, out, &v)
			if v.Key != "greeting" || v.Value == nil || *v.Value != "hello" || v.AppliedIndex != 2 {
				t.Errorf("get --json: %s", out)
			}
			kvMust(t, exitOK, "", a("put", "-q", "z", "last")...)
			out, _ = kvMust(t, exitOK, "", a("scan")...)
			want := "KEY       VALUE\na/b       \"\\xff\\x00\"\ngreeting  hello\nz         last\n" +
				"(long or binary keys and values are shortened or quoted; use --json for the exact bytes)\n3 pairs\n"
			if out != want {
				t.Errorf("scan:\n%s\nwant\n%s", out, want)
			}
			// --json is a stream: JSON lines, nothing for an empty range.
			out, _ = kvMust(t, exitOK, "", a("scan", "--json", "--limit", "2")...)
			if want := "{\"key\":\"a/b\",\"value_base64\":\"/wA=\"}\n{\"key\":\"greeting\",\"value\":\"hello\"}\n"; out != want {
				t.Errorf("scan --json:\n%s\nwant\n%s", out, want)
			}
			out, _ = kvMust(t, exitOK, "", a("scan", "--json", "--prefix", "nothing")...)
			if out != "" {
				t.Errorf("empty scan --json: %q", out)
			}
			if out, _ = kvMust(t, exitOK, "", a("scan", "--start", "b", "--limit", "1")...); out != "KEY       VALUE\ngreeting  hello\n1 pair\n" {
				t.Errorf("scan of one pair:\n%s", out)
			}
			out, _ = kvMust(t, exitOK, "", a("del", "--json", "greeting")...)
			mustJSON(t, out, &idx)
			if idx.Index != 4 {
				t.Errorf("del --json: %s", out)
			}
			_, stderr := kvMust(t, exitNotFound, "", a("get", "greeting")...)
			if !hasErrorLine(stderr, `key "greeting" not found`) {
				t.Errorf("get of a deleted key: stderr %q", stderr)
			}
		})
	}
}

func TestKVTxn(t *testing.T) {
	for name, target := range kvTargetsSmall(t) {
		t.Run(name, func(t *testing.T) {
			a := func(cmd string, args ...string) []string { return kvArgs(target, cmd, args...) }
			init := `{"ops":[{"op":"put","key":"acct:1","value":"100"},{"op":"put","key":"acct:2","value":"0"}]}`
			out, _ := kvMust(t, exitOK, init, a("txn", "--json")...)
			var idx indexJSON
			mustJSON(t, out, &idx)
			if idx.Index != 1 {
				t.Errorf("txn from stdin: %s", out)
			}
			file := filepath.Join(t.TempDir(), "transfer.json")
			transfer := `{"ops":[{"op":"add","key":"acct:1","delta":-60},{"op":"add","key":"acct:2","delta":60},{"op":"check","key":"acct:1","min":0}]}`
			if err := os.WriteFile(file, []byte(transfer), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, _ = kvMust(t, exitOK, "", a("txn", file)...); out != "committed at index 2\n" {
				t.Errorf("txn FILE printed %q", out)
			}
			// The second transfer would overdraw acct:1: exit 4, nothing changes.
			before, _ := kvMust(t, exitOK, "", a("scan", "--json")...)
			_, stderr := kvMust(t, exitAborted, transfer, a("txn", "-")...)
			if !hasErrorLine(stderr, `transaction aborted at op 2 (key "acct:1"): value -20 is below the minimum 0; nothing changed`) {
				t.Errorf("aborted txn: stderr %q", stderr)
			}
			if after, _ := kvMust(t, exitOK, "", a("scan", "--json")...); after != before {
				t.Errorf("aborted txn changed the state:\n%s\n->\n%s", before, after)
			}
			_, stderr = kvMust(t, exitAborted, `{"ops":[{"op":"add","key":"acct:2","delta":1},{"op":"check","key":"acct:2","equals":"x"}]}`, a("txn")...)
			if !strings.Contains(stderr, "at op 1") {
				t.Errorf("failed equals check: stderr %q", stderr)
			}
		})
	}
}

// TestKVBadInput checks that input that can never commit is a usage error
// (exit 2) naming the problem, and creates nothing.
func TestKVBadInput(t *testing.T) {
	for name, target := range kvTargets(t) {
		t.Run(name, func(t *testing.T) {
			a := func(cmd string, args ...string) []string { return kvArgs(target, cmd, args...) }
			cases := []struct {
				stdin string
				args  []string
				want  string
			}{
				{"", a("put", "", "x"), "the key is empty"},
				{"", a("put", strings.Repeat("k", 4097), "x"), "the key is 4097 bytes, over the limit of 4096 bytes"},
				{"", a("get", ""), "the key is empty"},
				{"", a("del", ""), "the key is empty"},
				{"", a("put", "k"), "no value: give VALUE, - to read it from standard input, or --file FILE"},
				{"", a("get"), "expected 1 argument, got 0"},
				{"", a("scan", "--limit", "-1"), "--limit must not be negative"},
				{"", a("scan", "--start", "b", "--end", "a"), `--start "b" is not below --end "a"`},
				{"", a("txn"), "the transaction input is empty"},
				{"{", a("txn"), "invalid transaction: the JSON document ends too early"},
				{`{"ops":[{"op":"frob","key":"a"}]}`, a("txn"), `op 0: unknown op "frob"`},
				{`{"ops":[{"op":"add","key":"a","delta":1.5}]}`, a("txn"), "delta"},
				{`{"ops":[{"op":"put","key":"a","value":"1","extra":1}]}`, a("txn"), `unknown field "extra"`},
				{"", a("txn", "a", "b"), `unexpected argument "b"`},
			}
			for _, c := range cases {
				_, stderr := kvMust(t, exitUsage, c.stdin, c.args...)
				if !hasErrorLine(stderr, c.want) {
					t.Errorf("%.60q: stderr %q, want %q", c.args, stderr, c.want)
				}
			}
			if target[0] == "--data" {
				if _, err := os.Stat(target[1]); !os.IsNotExist(err) {
					t.Errorf("bad input created the data directory %s", target[1])
				}
			}
			_, stderr := kvMust(t, exitFailure, "", a("txn", filepath.Join(t.TempDir(), "missing.json"))...)
			if !strings.Contains(stderr, "missing.json: no such file") {
				t.Errorf("missing txn file: stderr %q", stderr)
			}
		})
	}
}

func TestKVReadsDoNotCreate(t *testing.T) {
	data := filepath.Join(t.TempDir(), "nope")
	for _, args := range [][]string{{"get", "k"}, {"scan"}} {
		_, stderr := kvMust(t, exitFailure, "", kvArgs([]string{"--data", data}, args[0], args[1:]...)...)
		if !hasErrorLine(stderr, "no data directory at "+data) {
			t.Errorf("%v: stderr %q", args, stderr)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Fatalf("%v created %s", args, data)
		}
	}
}

// TestKVReadsChangeNoData checks that get and scan on --data leave every
// file but the lock byte-for-byte unchanged.
func TestKVReadsChangeNoData(t *testing.T) {
	data := smallDataDir(t)
	kvMust(t, exitOK, "", "put", "--data", data, "k", "v")
	before := dirtest.Snapshot(t, data)
	delete(before, filepath.Join(data, "LOCK"))
	kvMust(t, exitOK, "", "get", "--data", data, "k")
	kvMust(t, exitOK, "", "scan", "--data", data)
	after := dirtest.Snapshot(t, data)
	delete(after, filepath.Join(data, "LOCK"))
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("reads changed the data directory:\n%v\n->\n%v", before, after)
	}
}

func TestKVLockedDataDir(t *testing.T) {
	data := t.TempDir()
	st, err := store.Open(store.Options{Dir: data, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, args := range [][]string{{"put", "k", "v"}, {"get", "k"}, {"del", "k"}, {"scan"}, {"txn"}} {
		_, stderr := kvMust(t, exitFailure, `{"ops":[{"op":"del","key":"k"}]}`, kvArgs([]string{"--data", data}, args[0], args[1:]...)...)
		if !strings.Contains(stderr, fmt.Sprintf("holder: pid %d", os.Getpid())) || !strings.Contains(stderr, "--addr") {
			t.Errorf("%v on a held directory: stderr %q, want the holder's pid and a hint", args, stderr)
		}
	}
}

func TestKVNoServer(t *testing.T) {
	_, stderr := kvMust(t, exitFailure, "", "get", "--addr", "127.0.0.1:1", "k")
	if !hasErrorLine(stderr, "no kvtool server at 127.0.0.1:1") {
		t.Errorf("stderr %q", stderr)
	}
}

func TestKVAddrFromEnv(t *testing.T) {
	target := kvTargets(t)["addr"]
	t.Setenv("KVTOOL_ADDR", target[1])
	var out, errw bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &errw, fs: vfs.Default}
	code := execute(context.Background(), []string{"kvtool", "put", "--json", "k", "v"}, e)
	var idx indexJSON
	if code != exitOK || json.Unmarshal(out.Bytes(), &idx) != nil || idx.Index != 1 {
		t.Fatalf("put with KVTOOL_ADDR: code %d, %q %q", code, out.String(), errw.String())
	}
}
