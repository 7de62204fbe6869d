package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/dirtest"
)

// TestCheckpointJSONFields checks the JSON of checkpoint inspect and
// verify against what list and the files say.
func TestCheckpointJSONFields(t *testing.T) {
	sd := newSnapDir(t)
	base := sd.man.Base
	stdout, stderr, code := run(t, "--data", sd.data, "checkpoint", "inspect", "--json", base.Name)
	mustCode(t, code, exitOK, stdout, stderr)
	var c checkpointJSON
	mustJSON(t, stdout, &c)
	if !c.Base {
		t.Errorf("checkpoint inspect --json of the base says base false (list says true): %s", stdout)
	}
	stdout, stderr, code = run(t, "--data", sd.data, "checkpoint", "inspect", base.Name)
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.Contains(stdout, "role        base") {
		t.Errorf("checkpoint inspect does not give the role:\n%s", stdout)
	}

	// verify: the applied index is the checkpoint's (or the chain's end),
	// never 0, and there are no WAL indexes (the WAL is not read).
	for _, tc := range []struct {
		args []string
		want uint64
		hash string
	}{
		{[]string{"checkpoint", "verify", "--json"}, base.Index, sd.hashes[base.Index]},
		{[]string{"checkpoint", "verify", "--json", sd.snap(base.Name)}, base.Index, sd.hashes[base.Index]},
		{[]string{"delta", "verify", "--json"}, sd.man.SnapshotIndex(), ""},
	} {
		stdout, stderr, code := run(t, append([]string{"--data", sd.data}, tc.args...)...)
		mustCode(t, code, exitOK, stdout, stderr)
		var doc map[string]any
		mustJSON(t, stdout, &doc)
		if got, _ := doc["applied_index"].(float64); uint64(got) != tc.want {
			t.Errorf("%v: applied_index %v, want %d:\n%s", tc.args, doc["applied_index"], tc.want, stdout)
		}
		for _, k := range []string{"wal_first_index", "wal_last_index"} {
			if v, ok := doc[k]; ok {
				t.Errorf("%v: %s is %v; the WAL is not read, so it should not be there", tc.args, k, v)
			}
		}
		if h, _ := doc["state_hash"].(string); tc.hash != "" && h != tc.hash {
			t.Errorf("%v: state_hash %q, want %s", tc.args, h, tc.hash)
		}
	}
}

// TestWrongFileKind checks that a file of the wrong kind gets the command
// that reads it, and that a file that is not kvtool's never has its bytes
// echoed.
func TestWrongFileKind(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	src, _, _ := sourceDir(t, 50)
	stream, errOut, code := run(t, "transfer", "send", "--data", src, "--to", "-")
	mustCode(t, code, exitOK, "(the stream)", errOut)
	dir := t.TempDir()
	xfer := filepath.Join(dir, "kv.xfer")
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(xfer, []byte(stream), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("hunter2-is-my-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "checkpoint", "verify", xfer)
	mustCode(t, code, exitUsage, stdout, stderr)
	if !hasErrorLine(stderr, "is a transfer stream, not a checkpoint; check it with kvtool transfer verify "+xfer) ||
		strings.Contains(stdout+stderr, "fault") || strings.Contains(stderr, "backup") {
		t.Errorf("checkpoint verify of a transfer stream:\n%s%s", stdout, stderr)
	}
	for _, args := range [][]string{
		{"transfer", "verify", secret}, {"transfer", "verify", "--json", secret},
		{"checkpoint", "verify", secret}, {"checkpoint", "inspect", secret},
	} {
		stdout, stderr, code := run(t, args...)
		mustCode(t, code, exitDamage, stdout, stderr)
		if strings.Contains(stdout+stderr, "hunter") || strings.Contains(stdout+stderr, "password") {
			t.Errorf("%v echoes the file's bytes:\n%s%s", args, stdout, stderr)
		}
		if !strings.Contains(stdout+stderr, "does not start with a kvtool file header") {
			t.Errorf("%v does not say what is wrong:\n%s%s", args, stdout, stderr)
		}
	}
	ckpt := filepath.Join(dir, "state.ckpt")
	if _, stderr, code := run(t, "--data", src, "replay", "--out", ckpt); code != exitOK {
		t.Fatalf("replay --out: %s", stderr)
	}
	stdout, stderr, code = run(t, "transfer", "verify", ckpt)
	mustCode(t, code, exitUsage, stdout, stderr)
	if !hasErrorLine(stderr, "is a checkpoint, not a transfer stream; check it with kvtool checkpoint verify "+ckpt) {
		t.Errorf("transfer verify of a checkpoint: %s", stderr)
	}
}

// TestSendLeavesNoTransferDir checks that transfer send --data leaves no
// DATA/.transfer behind, over the network and as a one-way stream, and
// that verify describes a DATA/.transfer (a partial receive) rather than
// calling it "not a kvtool file name".
func TestSendLeavesNoTransferDir(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	src, _, _ := sourceDir(t, 50)
	before := dirtest.Snapshot(t, src)
	_, errOut, code := run(t, "transfer", "send", "--data", src, "--to", "-")
	mustCode(t, code, exitOK, "(the stream)", errOut)
	dirtest.RequireUnchanged(t, src, before, "transfer send --to -")

	r, addr := startRecv(t, filepath.Join(t.TempDir(), "dst"))
	out, errOut, code := run(t, "transfer", "send", "--data", src, "--to", addr)
	mustCode(t, code, exitOK, out, errOut)
	mustCode(t, r.wait(t), exitOK, r.stdout.String(), r.stderr.String())
	dirtest.RequireUnchanged(t, src, before, "transfer send --to HOST:PORT")

	if err := os.MkdirAll(filepath.Join(src, format.TransferDir, "partial"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = run(t, "--data", src, "verify")
	mustCode(t, code, exitOK, out, errOut)
	if strings.Contains(out, "not a kvtool file name") || !strings.Contains(out, "transfer directory") {
		t.Errorf("verify of a directory with %s:\n%s", format.TransferDir, out)
	}
}

// TestHelpPlaceholders checks that no flag's help shows urfave/cli's
// generic "value" placeholder: each names what it takes.
func TestHelpPlaceholders(t *testing.T) {
	re := regexp.MustCompile(`--[a-z-]+ value\b`)
	var walk func(prefix []string, cmds []*cli.Command)
	walk = func(prefix []string, cmds []*cli.Command) {
		for _, c := range cmds {
			path := append(append([]string{}, prefix...), c.Name)
			stdout, _, _ := run(t, append(path, "--help")...)
			if m := re.FindString(stdout); m != "" {
				t.Errorf("kvtool %s --help shows %q", strings.Join(path, " "), m)
			}
			walk(path, c.Subcommands)
		}
	}
	walk(nil, newApp(env{}).Commands)
}

// TestTransferStatusHeaders checks that the tables of transfer status
// have uppercase headers, as every other table.
func TestTransferStatusHeaders(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	s := startServe(t, "--data", smallDataDir(t))
	stdout, stderr, code := run(t, "transfer", "status", "--addr", s.addr)
	mustCode(t, code, exitOK, stdout, stderr)
	if first := strings.SplitN(stdout, "\n", 2)[0]; strings.Join(strings.Fields(first), " ") != "LEASE PEER PINNED INDEX RETAINED BYTES STATE EXPIRES" {
		t.Errorf("transfer status header %q", first)
	}
	s.shutdown(t)
}
