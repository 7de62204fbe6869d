package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// TestMain clears the variables kvtool reads, so that the environment of
// whoever runs the tests cannot change what they do; a test that wants one
// sets it with t.Setenv. (Run as a child of a drill, the binary is kvtool
// instead: standInForKvtool.)
func TestMain(m *testing.M) {
	standInForKvtool()
	os.Unsetenv("KVTOOL_DATA")
	os.Unsetenv("KVTOOL_ADDR")
	os.Exit(m.Run())
}

// run runs kvtool in-process with args and returns what it printed and its
// exit code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errw bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &errw, fs: vfs.Default}
	code = execute(context.Background(), append([]string{"kvtool"}, args...), e)
	return out.String(), errw.String(), code
}

// mustCode fails the test unless code is want, showing the output.
func mustCode(t *testing.T, code, want int, stdout, stderr string) {
	t.Helper()
	if code != want {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		stdout, stderr, code := run(t, args...)
		mustCode(t, code, exitOK, stdout, stderr)
		for _, want := range []string{
			"DATA/wal/*.wal", "DATA/snap", "DATA/MANIFEST", "DATA/LOCK",
			"EXIT CODES", "KVTOOL_DATA", "--data DIR", "--json", "--quiet",
			"wal", "completion", "version",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%v: help does not mention %q", args, want)
			}
		}
		if stderr != "" {
			t.Errorf("%v: stderr %q, want nothing", args, stderr)
		}
	}
}

// TestHelpEveryCommand checks that every command has help with examples and
// shows the global options.
func TestHelpEveryCommand(t *testing.T) {
	var walk func(prefix []string, cmds []*cli.Command)
	walk = func(prefix []string, cmds []*cli.Command) {
		for _, c := range cmds {
			path := append(append([]string{}, prefix...), c.Name)
			stdout, stderr, code := run(t, append(path, "--help")...)
			mustCode(t, code, exitOK, stdout, stderr)
			for _, want := range []string{"kvtool " + strings.Join(path, " "), "Examples:", "--data DIR", "--json"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("%s --help does not mention %q:\n%s", strings.Join(path, " "), want, stdout)
				}
			}
			walk(path, c.Subcommands)
		}
	}
	walk(nil, newApp(env{}).Commands)
}

func TestHelpCommandForGroup(t *testing.T) {
	stdout, stderr, code := run(t, "help", "wal")
	mustCode(t, code, exitOK, stdout, stderr)
	for _, want := range []string{"list", "dump", "verify", "repair", "rotate"} {
		if !strings.Contains(stdout, "   "+want+" ") {
			t.Errorf("kvtool help wal does not list %q:\n%s", want, stdout)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string // in stderr
	}{
		{nil, "missing command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"wal"}, "missing command after 'kvtool wal'"},
		{[]string{"wal", "verfy"}, `did you mean "verify"?`},
		{[]string{"--bogus", "wal", "list"}, "flag provided but not defined: -bogus"},
		{[]string{"wal", "list", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"wal", "dump", "--from", "x"}, `invalid value "x" for flag -from`},
		{[]string{"wal", "dump", "--from", "10", "--to", "5"}, "--to 5 is below --from 10"},
		{[]string{"wal", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"wal", "verify", "a", "b"}, `unexpected argument "a"`},
		{[]string{"version", "x"}, `unexpected argument "x"`},
		{[]string{"completion"}, "expected 1 argument, got 0"},
		{[]string{"completion", "fish"}, `unsupported shell "fish"`},
		{[]string{"help", "frobnicate"}, "No help topic for 'frobnicate'"},
		{[]string{"--data", "", "wal", "list"}, "the data directory is empty"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			stdout, stderr, code := run(t, tt.args...)
			mustCode(t, code, exitUsage, stdout, stderr)
			if !hasErrorLine(stderr, tt.want) {
				t.Errorf("stderr %q, want a line \"kvtool: ...%s...\"", stderr, tt.want)
			}
		})
	}
}

// TestUsageErrorHint checks that a usage error says where to read more.
func TestUsageErrorHint(t *testing.T) {
	_, stderr, _ := run(t, "wal", "dump", "--bogus")
	if !strings.Contains(stderr, "kvtool: hint: run 'kvtool wal dump --help' for usage") {
		t.Errorf("stderr %q lacks the help hint", stderr)
	}
}

// TestMissingDataDir checks every command that needs a data directory: exit
// 1 with a message naming the directory and how to choose another, and
// nothing created.
func TestMissingDataDir(t *testing.T) {
	data := filepath.Join(t.TempDir(), "nope")
	for _, cmd := range [][]string{
		{"wal", "list"}, {"wal", "dump"}, {"wal", "verify"},
		{"wal", "repair"}, {"wal", "repair", "--dry-run"}, {"wal", "rotate"},
	} {
		for _, args := range [][]string{
			append([]string{"--data", data}, cmd...),           // global flag before the command
			append(append([]string{}, cmd...), "--data", data), // and after it
		} {
			stdout, stderr, code := run(t, args...)
			mustCode(t, code, exitFailure, stdout, stderr)
			want := "kvtool: no data directory at " + data + " (from --data)"
			if !strings.Contains(stderr, want) {
				t.Errorf("%v: stderr %q, want %q", args, stderr, want)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Fatalf("%v created %s", args, data)
			}
		}
	}
}

func TestMissingWALDir(t *testing.T) {
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "MANIFEST"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "--data", data, "wal", "verify")
	mustCode(t, code, exitFailure, stdout, stderr)
	if !strings.Contains(stderr, "no write-ahead log at "+filepath.Join(data, "wal")) {
		t.Errorf("stderr %q does not name the missing wal directory", stderr)
	}
	os.Remove(filepath.Join(data, "MANIFEST"))
	assertNoFiles(t, data)
}

func TestEnvDataDir(t *testing.T) {
	envDir := filepath.Join(t.TempDir(), "from-env")
	flagDir := filepath.Join(t.TempDir(), "from-flag")
	t.Setenv("KVTOOL_DATA", envDir)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"wal", "list"}, envDir},
		{[]string{"--data", flagDir, "wal", "list"}, flagDir},
		{[]string{"wal", "list", "--data", flagDir}, flagDir},
		{[]string{"wal", "--data", flagDir, "list"}, flagDir},
	} {
		_, stderr, code := run(t, tt.args...)
		if code != exitFailure || !strings.Contains(stderr, "no data directory at "+tt.want+" ") {
			t.Errorf("%v: code %d, stderr %q, want the data directory %s", tt.args, code, stderr, tt.want)
		}
	}
}

// TestGlobalsNearestWins checks that a global flag given after the command
// overrides the same flag given before it.
func TestGlobalsNearestWins(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	_, stderr, _ := run(t, "--data", a, "wal", "list", "--data", b)
	if !strings.Contains(stderr, "no data directory at "+b+" ") {
		t.Errorf("stderr %q, want the data directory %s", stderr, b)
	}
}

func TestVersion(t *testing.T) {
	stdout, stderr, code := run(t, "version")
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.Contains(stdout, "kvtool") || !strings.Contains(stdout, "go1.") {
		t.Errorf("version output %q", stdout)
	}
	stdout, stderr, code = run(t, "--version")
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.HasPrefix(stdout, "kvtool version ") {
		t.Errorf("--version output %q", stdout)
	}
	for _, args := range [][]string{{"version", "--json"}, {"--json", "version"}} {
		stdout, stderr, code = run(t, args...)
		mustCode(t, code, exitOK, stdout, stderr)
		var v map[string]any
		mustJSON(t, stdout, &v)
		for _, k := range []string{"version", "go_version", "platform"} {
			if _, ok := v[k]; !ok {
				t.Errorf("%v: no %q in %s", args, k, stdout)
			}
		}
	}
}

// mustJSON checks that s is exactly one JSON document and decodes it into v.
func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document:\n%s", s)
	}
}

func TestCompletion(t *testing.T) {
	stdout, stderr, code := run(t, "completion", "bash")
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.Contains(stdout, "complete -o bashdefault") || !strings.Contains(stdout, "--generate-bash-completion") {
		t.Errorf("bash completion script:\n%s", stdout)
	}
	stdout, stderr, code = run(t, "completion", "zsh")
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.HasPrefix(stdout, "#compdef kvtool") {
		t.Errorf("zsh completion script:\n%s", stdout)
	}
	// What the scripts ask kvtool for. urfave/cli looks at os.Args to tell
	// a flag being completed from a command.
	defer func(args []string) { os.Args = args }(os.Args)
	os.Args = []string{"kvtool", "wal", "--generate-bash-completion"}
	stdout, stderr, code = run(t, os.Args[1:]...)
	mustCode(t, code, exitOK, stdout, stderr)
	for _, want := range []string{"list\n", "dump\n", "verify\n", "repair\n", "rotate\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("completion of 'kvtool wal' lacks %q:\n%s", want, stdout)
		}
	}
}

func TestExitCode(t *testing.T) {
	corrupt := format.Corruptf("d/wal/0000000000000001.wal", 4096, "frame checksum mismatch")
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("disk on fire"), exitFailure},
		{corrupt, exitDamage},
		{fmt.Errorf("open: %w", corrupt), exitDamage},
		{fmt.Errorf("LOCK: %w (holder: pid 1)", vfs.ErrLocked), exitFailure},
		{context.Canceled, exitFailure},
		{failed(corrupt, ""), exitFailure}, // an explicit code wins
		{damaged(errors.New("x"), ""), exitDamage},
		{aborted(errors.New("check failed")), exitAborted},
		{&exitError{code: exitUsage, err: errors.New("x")}, exitUsage},
		{cli.Exit("No help topic for 'x'", 3), exitUsage}, // urfave/cli's own codes are usage errors
		{errors.New(`Required flag "to" not set`), exitUsage},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestReportError(t *testing.T) {
	var b bytes.Buffer
	err := fmt.Errorf("read: %w", format.Corruptf("d/wal/0000000000000001.wal", 4096, "frame checksum mismatch"))
	code := reportError(&b, damaged(err, "run `kvtool wal verify`"))
	if code != exitDamage {
		t.Errorf("code %d", code)
	}
	want := "kvtool: read: d/wal/0000000000000001.wal: corruption at offset 4096: frame checksum mismatch\n" +
		"kvtool: hint: run `kvtool wal verify`\n"
	if b.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", b.String(), want)
	}

	b.Reset()
	reportError(&b, fmt.Errorf("d/LOCK: %w (holder: pid 42)", vfs.ErrLocked))
	if !strings.Contains(b.String(), "holder: pid 42") || !strings.Contains(b.String(), "kvtool: hint: ") {
		t.Errorf("lock error printed as %q", b.String())
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"./kvdata":      "./kvdata",
		"/srv/kv-1":     "/srv/kv-1",
		"my data":       "'my data'",
		"it's":          `'it'\''s'`,
		"$HOME/x":       "'$HOME/x'",
		"":              "''",
		"/tmp/a:b@c%d+": "/tmp/a:b@c%d+",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestPreview(t *testing.T) {
	for in, want := range map[string]string{
		"":                            `""`,
		"hello":                       `"hello"`,
		"tab\there":                   `"tab\there"`,
		strings.Repeat("a", 60):       `"` + strings.Repeat("a", 48) + `"...`,
		"\x00\x01\x02":                "0x000102",
		strings.Repeat("\xff", 30):    "0x" + strings.Repeat("ff", 20) + "...",
		strings.Repeat("é", 30):       `"` + strings.Repeat("é", 24) + `"...`,
		strings.Repeat("a", 47) + "é": `"` + strings.Repeat("a", 47) + `"...`,
	} {
		if got := preview([]byte(in)); got != want {
			t.Errorf("preview(%q) = %s, want %s", in, got, want)
		}
	}
}

// hasErrorLine reports whether stderr has a line "kvtool: ..." containing want.
func hasErrorLine(stderr, want string) bool {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "kvtool: ") && strings.Contains(line, want) {
			return true
		}
	}
	return false
}

// assertNoFiles fails if dir holds any file or directory.
func assertNoFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("unexpected %s in %s", e.Name(), dir)
	}
}
