package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/internal/dirtest"
)

func TestReplayCommand(t *testing.T) {
	sd := newSnapDir(t)
	for idx, hash := range sd.hashes {
		stdout, stderr, code := run(t, "--data", sd.data, "replay", "--json", "--to-index", fmt.Sprint(idx))
		mustCode(t, code, exitOK, stdout, stderr)
		var r replayJSON
		mustJSON(t, stdout, &r)
		if r.AppliedIndex != idx || r.StateHash != hash || r.Base != sd.man.Base.Name || r.Deltas == nil {
			t.Errorf("replay --to-index %d: %s, want hash %s", idx, stdout, hash)
		}
	}
	stdout, stderr, code := run(t, "--data", sd.data, "replay")
	mustCode(t, code, exitOK, stdout, stderr)
	for _, want := range []string{
		fmt.Sprintf("applied index  %d\n", sd.last), "state hash     " + sd.hashes[sd.last] + "\n",
		"base           " + sd.man.Base.Name, "deltas         2 deltas", "WAL            40 records",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("replay does not print %q:\n%s", want, stdout)
		}
	}
}

func TestReplayCommandNotCovered(t *testing.T) {
	sd := newSnapDir(t)
	covered := fmt.Sprintf("the retained files cover indexes %d to %d", sd.man.Base.Index, sd.last)
	for _, idx := range []uint64{1, sd.man.Base.Index - 1, sd.last + 1, sd.last + 1000} {
		stdout, stderr, code := run(t, "--data", sd.data, "replay", "--to-index", fmt.Sprint(idx))
		mustCode(t, code, exitFailure, stdout, stderr)
		if stdout != "" || !hasErrorLine(stderr, fmt.Sprintf("replay to index %d", idx)) || !strings.Contains(stderr, covered) {
			t.Errorf("replay --to-index %d:\n%s%s", idx, stdout, stderr)
		}
	}
	stdout, stderr, code := run(t, "--data", sd.data, "replay", "--to-index", "0")
	mustCode(t, code, exitUsage, stdout, stderr)
}

func TestReplayCommandOut(t *testing.T) {
	sd := newSnapDir(t)
	idx := sd.man.Deltas[0].Index
	out := filepath.Join(t.TempDir(), "pitr.ckpt")
	before := dirtest.Snapshot(t, sd.data)
	stdout, stderr, code := run(t, "--data", sd.data, "replay", "--json", "--to-index", fmt.Sprint(idx), "--out", out)
	mustCode(t, code, exitOK, stdout, stderr)
	dirtest.RequireUnchanged(t, sd.data, before, "replay --out")
	var r replayJSON
	mustJSON(t, stdout, &r)
	if r.Out == nil || r.Out.Path != out || r.Out.Index != idx || r.Out.StateHash != sd.hashes[idx] {
		t.Fatalf("replay --out: %s", stdout)
	}

	stdout, stderr, code = run(t, "--data", sd.data, "checkpoint", "verify", out)
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.HasPrefix(stdout, "ok: 1 file checked (1 checkpoint)") {
		t.Errorf("checkpoint verify of the out file: %q", stdout)
	}
	stdout, stderr, code = run(t, "checkpoint", "inspect", "--json", out)
	mustCode(t, code, exitOK, stdout, stderr)
	var c checkpointJSON
	mustJSON(t, stdout, &c)
	if c.Index != idx || c.StateHash != sd.hashes[idx] || c.StoreID != sd.man.StoreID.String() || c.Shards != sd.man.Shards {
		t.Errorf("checkpoint inspect of the out file: %s", stdout)
	}

	// An existing file is kept unless --force.
	old := fileLen(t, out)
	stdout, stderr, code = run(t, "--data", sd.data, "replay", "--out", out)
	mustCode(t, code, exitFailure, stdout, stderr)
	if !strings.Contains(stderr, "--force") || fileLen(t, out) != old {
		t.Errorf("replay over an existing --out:\n%s", stderr)
	}
	stdout, stderr, code = run(t, "--data", sd.data, "replay", "--out", out, "--force")
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.Contains(stdout, "written        "+out) {
		t.Errorf("replay --out --force:\n%s", stdout)
	}

	// A damaged out file is found by checkpoint verify.
	flipByte(t, out, fileLen(t, out)/2)
	stdout, stderr, code = run(t, "checkpoint", "verify", out)
	mustCode(t, code, exitDamage, stdout, stderr)
	if !strings.Contains(stdout, out+" ") {
		t.Errorf("checkpoint verify does not name the file:\n%s", stdout)
	}
}
