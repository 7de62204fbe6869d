package datadir_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/replay"
	"github.com/kvtool/kvtool/vfs"
)

// TestReplayEveryCoveredIndex rebuilds the state at every index the
// retained files cover and compares it with the workload's model.
func TestReplayEveryCoveredIndex(t *testing.T) {
	td := buildDir(t)
	before := dirtest.Snapshot(t, td.dir)
	ranges, err := datadir.Covered(readOnlyFS(t), td.dir)
	if err != nil {
		t.Fatal(err)
	}
	base := td.man.Base.Index
	if want := []datadir.Range{{base, td.last}}; len(ranges) != 1 || ranges[0] != want[0] {
		t.Fatalf("covered %v, want %v", ranges, want)
	}
	checked := 0
	for idx := base; idx <= td.last; idx += 7 {
		want, ok := td.hashes[idx]
		if !ok {
			continue // a delete of an absent key: no record
		}
		res, err := datadir.Replay(readOnlyFS(t), td.dir, datadir.ReplayOptions{ToIndex: idx})
		if err != nil {
			t.Fatalf("replay to %d: %v", idx, err)
		}
		if res.AppliedIndex != idx || res.StateHash != want || res.Keys != td.keys[idx] {
			t.Fatalf("replay to %d: index %d hash %016x keys %d, want hash %016x keys %d",
				idx, res.AppliedIndex, res.StateHash, res.Keys, want, td.keys[idx])
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d indexes checked", checked)
	}
	dirtest.RequireUnchanged(t, td.dir, before, "Replay")
}

func TestReplayUsesChain(t *testing.T) {
	td := buildDir(t)
	d := td.man.Deltas
	res, err := datadir.Replay(vfs.Default, td.dir, datadir.ReplayOptions{ToIndex: d[1].Index})
	if err != nil {
		t.Fatal(err)
	}
	if res.Base != td.man.Base.Name || len(res.Deltas) != 2 || res.WALRecords != 0 {
		t.Errorf("replay to the chain's end used %+v", res.State)
	}
	res, err = datadir.Replay(vfs.Default, td.dir, datadir.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.AppliedIndex != td.last || res.StateHash != td.hashes[td.last] || res.WALFrom != d[1].Index+1 || res.WALRecords == 0 {
		t.Errorf("full replay: %+v", res.State)
	}
}

func TestReplayNotCovered(t *testing.T) {
	td := buildDir(t)
	for _, idx := range []uint64{1, td.man.Base.Index - 1, td.last + 1} {
		_, err := datadir.Replay(vfs.Default, td.dir, datadir.ReplayOptions{ToIndex: idx})
		if !errors.Is(err, replay.ErrNotCovered) {
			t.Errorf("replay to %d: %v, want ErrNotCovered", idx, err)
		}
	}
}

func TestReplayOut(t *testing.T) {
	td := buildDir(t)
	idx := td.man.Deltas[0].Index + 3
	for td.hashes[idx] == 0 {
		idx++
	}
	out := filepath.Join(t.TempDir(), "pitr.ckpt")
	res, err := datadir.Replay(vfs.Default, td.dir, datadir.ReplayOptions{ToIndex: idx, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Out == nil || res.Out.Path != out || res.Out.StateHash != td.hashes[idx] || res.Out.Meta.Index != idx {
		t.Fatalf("out %+v", res.Out)
	}
	if res.Out.Meta.StoreID != td.man.StoreID || res.Out.Meta.Term != 1 || res.Out.Meta.Shards != td.man.Shards {
		t.Errorf("out meta %+v", res.Out.Meta)
	}
	rep, err := datadir.VerifyCheckpoint(vfs.Default, out, datadir.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("verify the out file: %v %+v", err, rep)
	}
	r, err := checkpoint.Open(vfs.Default, out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Info().Keys != uint64(td.keys[idx]) {
		t.Errorf("out holds %d keys, want %d", r.Info().Keys, td.keys[idx])
	}

	// An existing file is refused unless Overwrite is set.
	if _, err := datadir.Replay(vfs.Default, td.dir, datadir.ReplayOptions{Out: out}); !errors.Is(err, datadir.ErrExists) {
		t.Errorf("existing out: %v, want ErrExists", err)
	}
	if _, err := datadir.Replay(vfs.Default, td.dir, datadir.ReplayOptions{Out: out, Overwrite: true}); err != nil {
		t.Errorf("overwrite: %v", err)
	}
	// A checkpoint-like name must carry the state's index.
	bad := filepath.Join(t.TempDir(), format.CheckpointName(idx+1))
	if _, err := datadir.Replay(vfs.Default, td.dir, datadir.ReplayOptions{ToIndex: idx, Out: bad}); !errors.Is(err, datadir.ErrOutName) {
		t.Errorf("out named for another index: %v, want ErrOutName", err)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("refused out file exists: %v", err)
	}
}

func TestInspect(t *testing.T) {
	td := buildDir(t)
	before := dirtest.Snapshot(t, td.dir)
	s, err := datadir.Inspect(readOnlyFS(t), td.dir, datadir.InspectOptions{WithState: true})
	if err != nil {
		t.Fatal(err)
	}
	dirtest.RequireUnchanged(t, td.dir, before, "Inspect")
	if s.Manifest == nil || s.ManifestErr != nil || s.Manifest.Generation != td.man.Generation {
		t.Fatalf("manifest %+v, %v", s.Manifest, s.ManifestErr)
	}
	if len(s.Checkpoints) != 1 || !s.Checkpoints[0].Base || s.Checkpoints[0].Err != nil {
		t.Errorf("checkpoints %+v", s.Checkpoints)
	}
	if len(s.Deltas) != 2 || !s.Deltas[0].InChain || !s.Deltas[1].InChain {
		t.Errorf("deltas %+v", s.Deltas)
	}
	if len(s.Segments) != len(td.segments(t)) || len(s.WALProblems) != 0 {
		t.Errorf("segments %d (problems %v), want %d", len(s.Segments), s.WALProblems, len(td.segments(t)))
	}
	if s.State == nil || s.State.AppliedIndex != td.last || s.State.StateHash != td.hashes[td.last] || s.State.Keys != td.keys[td.last] {
		t.Errorf("state %+v, %v; want index %d hash %016x", s.State, s.StateErr, td.last, td.hashes[td.last])
	}
	s, err = datadir.Inspect(vfs.Default, td.dir, datadir.InspectOptions{})
	if err != nil || s.State != nil {
		t.Errorf("without WithState: state %+v, %v", s.State, err)
	}
}

func TestInspectDamagedManifest(t *testing.T) {
	td := buildDir(t)
	p := filepath.Join(td.dir, format.ManifestName)
	flipByte(t, p, fileSize(t, p)-10)
	s, err := datadir.Inspect(vfs.Default, td.dir, datadir.InspectOptions{WithState: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Manifest != nil || format.AsCorruption(s.ManifestErr) == nil || s.State != nil {
		t.Errorf("manifest %+v err %v state %+v", s.Manifest, s.ManifestErr, s.State)
	}
	if len(s.Checkpoints) != 1 || s.Checkpoints[0].Base || len(s.Segments) == 0 {
		t.Errorf("the rest of the directory: %+v", s)
	}
}
