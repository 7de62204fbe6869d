package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
)

func TestInspectCommandJSON(t *testing.T) {
	sd := newSnapDir(t)
	stray := filepath.Join(sd.data, format.SnapDir, format.CheckpointName(3))
	if err := os.WriteFile(stray, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "--data", sd.data, "inspect", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	var s inspectJSON
	mustJSON(t, stdout, &s)
	m := s.Manifest
	if m == nil || m.StoreID != sd.man.StoreID.String() || m.Base == nil || m.Base.Name != sd.man.Base.Name ||
		len(m.Deltas) != 2 || m.WALFirstIndex != sd.man.WALFirstIndex || m.Generation != sd.man.Generation {
		t.Errorf("manifest: %s", stdout)
	}
	if s.AppliedIndex == nil || *s.AppliedIndex != sd.last || s.StateHash != sd.hashes[sd.last] || s.Keys == nil || *s.Keys != 150 {
		t.Errorf("state: %s", stdout)
	}
	if len(s.Segments) != len(sd.segments(t)) || len(s.WALProblems) != 0 {
		t.Errorf("segments: %s", stdout)
	}
	bases := 0
	for _, c := range s.Checkpoints {
		if c.Base {
			bases++
		}
		if c.Name == filepath.Base(stray) && (c.Base || c.Error == "") {
			t.Errorf("the stray checkpoint: %+v", c)
		}
	}
	if len(s.Checkpoints) != 2 || bases != 1 {
		t.Errorf("checkpoints: %+v", s.Checkpoints)
	}
	if len(s.Deltas) != 2 || !s.Deltas[0].InChain || !s.Deltas[1].InChain {
		t.Errorf("deltas: %+v", s.Deltas)
	}

	stdout, stderr, code = run(t, "--data", sd.data, "inspect", "--json", "--no-state")
	mustCode(t, code, exitOK, stdout, stderr)
	var top map[string]any
	mustJSON(t, stdout, &top)
	for _, k := range []string{"applied_index", "keys", "state_hash"} {
		if _, ok := top[k]; ok {
			t.Errorf("inspect --no-state has %q:\n%s", k, stdout)
		}
	}
}

func TestInspectCommandText(t *testing.T) {
	sd := newSnapDir(t)
	stdout, stderr, code := run(t, "--data", sd.data, "inspect")
	mustCode(t, code, exitOK, stdout, stderr)
	for _, want := range []string{
		"data directory   " + sd.data + "\n",
		"store            " + sd.man.StoreID.String() + " (4 shards",
		"base             " + sd.man.Base.Name,
		"deltas           2 deltas, up to index " + fmt.Sprint(sd.man.Deltas[1].Index),
		"WAL needed from  index " + fmt.Sprint(sd.man.WALFirstIndex),
		"applied index    " + fmt.Sprint(sd.last) + "\n",
		"keys             150\n",
		"state hash       " + sd.hashes[sd.last] + "\n",
		"\nSEGMENT ", "\nCHECKPOINT ", "\nDELTA ", "chain 1/2", "chain 2/2",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("inspect does not print %q:\n%s", want, stdout)
		}
	}
}

func TestInspectCommandDamage(t *testing.T) {
	sd := newSnapDir(t)
	p := manifest.Path(sd.data)
	flipByte(t, p, fileLen(t, p)-5)
	stdout, stderr, code := run(t, "--data", sd.data, "inspect")
	mustCode(t, code, exitDamage, stdout, stderr)
	if !strings.Contains(stdout, "manifest        UNREADABLE: "+p) || !strings.Contains(stdout, "SEGMENT") ||
		!strings.Contains(stdout, "unknown (no readable manifest)") || !hasErrorLine(stderr, "inspect: the manifest") {
		t.Errorf("inspect of a damaged manifest:\n%s%s", stdout, stderr)
	}

	sd = newSnapDir(t)
	p = sd.snap(sd.man.Deltas[0].Name)
	flipByte(t, p, fileLen(t, p)/2)
	stdout, stderr, code = run(t, "--data", sd.data, "inspect", "--json")
	mustCode(t, code, exitDamage, stdout, stderr)
	var s inspectJSON
	mustJSON(t, stdout, &s)
	if s.AppliedIndex != nil || !strings.Contains(s.StateError, p) || s.Manifest == nil {
		t.Errorf("inspect of a damaged delta: %s", stdout)
	}
}
