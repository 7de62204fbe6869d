package datadir_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/vfs"
)

func TestVerifyClean(t *testing.T) {
	td := buildDir(t)
	before := dirtest.Snapshot(t, td.dir)
	var calls int
	var lastDone, lastTotal int64
	rep, err := datadir.Verify(readOnlyFS(t), td.dir, datadir.VerifyOptions{Progress: func(done, total int64) {
		calls++
		if done < lastDone {
			t.Errorf("progress went back from %d to %d", lastDone, done)
		}
		lastDone, lastTotal = done, total
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Faults != 0 {
		t.Fatalf("clean directory has faults: %v", rep.Problems())
	}
	if rep.AppliedIndex != td.last {
		t.Errorf("applied index %d, want %d", rep.AppliedIndex, td.last)
	}
	if rep.SnapshotIndex != td.man.SnapshotIndex() {
		t.Errorf("snapshot index %d, want %d", rep.SnapshotIndex, td.man.SnapshotIndex())
	}
	kinds := map[datadir.FileKind]int{}
	for _, f := range rep.Files {
		kinds[f.Kind]++
		if !f.OK || len(f.Problems) != 0 || f.Size <= 0 {
			t.Errorf("file report %+v", f)
		}
	}
	if kinds[datadir.KindManifest] != 1 || kinds[datadir.KindCheckpoint] != 1 || kinds[datadir.KindDelta] != 2 || kinds[datadir.KindSegment] < 3 {
		t.Errorf("files checked by kind: %v", kinds)
	}
	if calls == 0 || lastDone != lastTotal || lastTotal == 0 {
		t.Errorf("progress: %d calls, last %d of %d", calls, lastDone, lastTotal)
	}
	if len(rep.Notes) != 0 {
		t.Errorf("notes on a clean directory: %q", rep.Notes)
	}
	dirtest.RequireUnchanged(t, td.dir, before, "Verify")
}

// TestVerifyNotes checks that files the manifest does not name are notes,
// not faults, and are not read.
func TestVerifyNotes(t *testing.T) {
	td := buildDir(t)
	snap := filepath.Join(td.dir, format.SnapDir)
	stray := map[string]string{
		filepath.Join(snap, format.CheckpointName(7)):                       "checkpoint not named",
		filepath.Join(snap, format.DeltaName(7, 9)):                         "delta not named",
		filepath.Join(snap, format.TempName(format.CheckpointName(9), 1)):   "temporary file",
		filepath.Join(td.dir, format.WALDir, format.QuarantineName("x", 5)): "quarantine file",
		filepath.Join(td.dir, "notes.txt"):                                  "not a kvtool file",
	}
	for p := range stray {
		if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := datadir.Verify(vfs.Default, td.dir, datadir.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("unnamed files made faults: %v", rep.Problems())
	}
	notes := strings.Join(rep.Notes, "\n")
	for p, want := range stray {
		if !strings.Contains(notes, p+": ") || !strings.Contains(notes, want) {
			t.Errorf("notes do not say %s is a %s:\n%s", p, want, notes)
		}
	}
}

// damage is one way of damaging a data directory; it returns the file the
// fault must name, the problem kind, and whether the fault has an offset.
type damage struct {
	name   string
	damage func(t *testing.T, td *testDir) (path string, kind datadir.ProblemKind, hasOffset bool)
}

var damages = []damage{
	{"base checkpoint byte", func(t *testing.T, td *testDir) (string, datadir.ProblemKind, bool) {
		p := td.snapPath(td.man.Base.Name)
		flipByte(t, p, fileSize(t, p)/2)
		return p, datadir.Corruption, true
	}},
	{"delta byte", func(t *testing.T, td *testDir) (string, datadir.ProblemKind, bool) {
		p := td.snapPath(td.man.Deltas[1].Name)
		flipByte(t, p, fileSize(t, p)/2)
		return p, datadir.Corruption, true
	}},
	{"manifest byte", func(t *testing.T, td *testDir) (string, datadir.ProblemKind, bool) {
		p := manifest.Path(td.dir)
		flipByte(t, p, fileSize(t, p)-10)
		return p, datadir.Corruption, true
	}},
	{"retained segment byte", func(t *testing.T, td *testDir) (string, datadir.ProblemKind, bool) {
		segs := td.segments(t)
		p := segs[len(segs)/2]
		flipByte(t, p, fileSize(t, p)/2)
		return p, datadir.Corruption, true
	}},
	{"delta named by the manifest deleted", func(t *testing.T, td *testDir) (string, datadir.ProblemKind, bool) {
		p := td.snapPath(td.man.Deltas[0].Name)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		return p, datadir.Missing, false
	}},
	{"base replaced by another sound checkpoint", func(t *testing.T, td *testDir) (string, datadir.ProblemKind, bool) {
		// Sound in itself, same name and index, but not the file the
		// manifest recorded: its checksum differs.
		p := td.snapPath(td.man.Base.Name)
		info, err := checkpoint.ReadInfo(vfs.Default, p)
		if err != nil {
			t.Fatal(err)
		}
		one := checkpoint.SourceFunc(func(fn func(string, []byte) bool) { fn("other", []byte("state")) })
		if _, err := checkpoint.WriteFile(vfs.Default, p, info.Meta, one, checkpoint.Options{}); err != nil {
			t.Fatal(err)
		}
		return p, datadir.Mismatch, true
	}},
	{"first retained segment deleted", func(t *testing.T, td *testDir) (string, datadir.ProblemKind, bool) {
		segs := td.segments(t)
		if err := os.Remove(segs[0]); err != nil {
			t.Fatal(err)
		}
		return segs[1], datadir.Coverage, true
	}},
}

func TestVerifyDamage(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			td := buildDir(t)
			path, kind, hasOffset := d.damage(t, td)
			before := dirtest.Snapshot(t, td.dir)
			rep, err := datadir.Verify(readOnlyFS(t), td.dir, datadir.VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			dirtest.RequireUnchanged(t, td.dir, before, "Verify")
			if rep.OK() || rep.Err() == nil {
				t.Fatalf("damage not found; report %+v", rep)
			}
			found := false
			for _, p := range rep.Problems() {
				if p.Path == path && p.Kind == kind && (p.Offset != datadir.NoOffset) == hasOffset {
					found = true
				}
			}
			if !found {
				t.Fatalf("no %s fault naming %s (offset: %v); faults:\n%s", kind, path, hasOffset, problemsText(rep))
			}
			if rep.Faults != len(rep.Problems()) {
				t.Errorf("Faults %d, problems listed %d", rep.Faults, len(rep.Problems()))
			}
		})
	}
}

// TestInspectDamagedReadOnly checks that Inspect describes damaged
// directories without changing a byte.
func TestInspectDamagedReadOnly(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			td := buildDir(t)
			d.damage(t, td)
			before := dirtest.Snapshot(t, td.dir)
			if _, err := datadir.Inspect(readOnlyFS(t), td.dir, datadir.InspectOptions{WithState: true}); err != nil {
				t.Fatal(err)
			}
			dirtest.RequireUnchanged(t, td.dir, before, "Inspect")
		})
	}
}

func problemsText(rep *datadir.Report) string {
	var b strings.Builder
	for _, p := range rep.Problems() {
		b.WriteString(p.String() + "\n")
	}
	return b.String()
}

func TestVerifyForeignSegment(t *testing.T) {
	td := buildDir(t)
	other := buildDir(t)
	theirs := other.segments(t)
	// The other store's newest segment, under a name after ours: its store
	// ID differs (and it does not link to our log).
	b, err := os.ReadFile(theirs[len(theirs)-1])
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(td.dir, format.WALDir, format.SegmentName(1<<40))
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := datadir.Verify(vfs.Default, td.dir, datadir.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatal("a foreign segment was not found")
	}
	found := false
	for _, p := range rep.Problems() {
		found = found || (p.Path == name && p.Kind == datadir.Foreign)
	}
	if !found {
		t.Errorf("no foreign fault on %s:\n%s", name, problemsText(rep))
	}
}

func TestVerifyNotADataDir(t *testing.T) {
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), t.TempDir()} {
		if _, err := datadir.Verify(vfs.Default, dir, datadir.VerifyOptions{}); !errors.Is(err, datadir.ErrNoDataDir) {
			t.Errorf("%s: %v, want ErrNoDataDir", dir, err)
		}
	}
}

func TestVerifyBaseAndChain(t *testing.T) {
	td := buildDir(t)
	rep, err := datadir.VerifyBase(vfs.Default, td.dir, datadir.VerifyOptions{})
	if err != nil || !rep.OK() || len(rep.Files) != 2 {
		t.Fatalf("VerifyBase: %v, %+v", err, rep)
	}
	rep, err = datadir.VerifyChain(vfs.Default, td.dir, datadir.VerifyOptions{})
	if err != nil || !rep.OK() || len(rep.Files) != 4 {
		t.Fatalf("VerifyChain: %v, %+v", err, rep)
	}
	p := td.snapPath(td.man.Deltas[0].Name)
	flipByte(t, p, fileSize(t, p)/2)
	rep, err = datadir.VerifyChain(vfs.Default, td.dir, datadir.VerifyOptions{})
	if err != nil || rep.OK() || rep.Problems()[0].Path != p {
		t.Fatalf("VerifyChain after damage: %v, %s", err, problemsText(rep))
	}
	rep, err = datadir.VerifyBase(vfs.Default, td.dir, datadir.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("VerifyBase is about the base only: %v, %s", err, problemsText(rep))
	}
}

// TestVerifyWALChangedUnderIt: verify beside a running server whose
// compaction removes a WAL segment between verify's listing and its read
// of it: the WAL changed, which is no damage and no reason to fail (verify
// exited 1 with "no such file or directory"); a note says to run it again.
func TestVerifyWALChangedUnderIt(t *testing.T) {
	td := buildDir(t)
	first := td.segments(t)[0]
	removed := false
	fs := vfs.NewErrorFS(vfs.Default, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpOpen && path == first && !removed {
			removed = true
			if err := os.Remove(path); err != nil { // a compaction drops it now
				t.Error(err)
			}
		}
		return nil
	}))
	rep, err := datadir.Verify(fs, td.dir, datadir.VerifyOptions{})
	if !removed {
		t.Fatal("verify never opened the first WAL segment")
	}
	if err != nil {
		t.Fatalf("the WAL compacted while verify read it: %v", err)
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "run verify again") {
		t.Fatalf("the WAL compacted while verify read it: no note says so (%v; notes %q)", rep.Problems(), rep.Notes)
	}
}
