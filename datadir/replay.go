package datadir

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/delta"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/replay"
	"github.com/kvtool/kvtool/vfs"
)

// ErrExists is returned (wrapped) by Replay when ReplayOptions.Out exists
// and Overwrite is not set.
var ErrExists = errors.New("kvtool/datadir: the output file already exists")

// ErrOutName is returned (wrapped) by Replay when ReplayOptions.Out is named
// like a checkpoint of another index: verification would reject the file.
var ErrOutName = errors.New("kvtool/datadir: the output file's name says another index")

// ReplayOptions tune Replay.
type ReplayOptions struct {
	// ToIndex is the index to rebuild the state at; 0 means everything
	// durable (up to a torn tail, which is never acknowledged).
	ToIndex uint64
	// Out, if set, is the path to write the rebuilt state to, as a
	// checkpoint file.
	Out string
	// Overwrite lets Replay replace an existing Out.
	Overwrite bool
	// Progress, if set, is called while Out is written with the keys and
	// bytes written so far.
	Progress func(keys, bytes int64)
}

// State describes a state rebuilt from a data directory, and what built it.
type State struct {
	AppliedIndex uint64
	Keys         int
	StateHash    uint64   // format.StateHasher digest; print with format.FormatStateHash
	Base         string   // base checkpoint applied ("" if none)
	BaseIndex    uint64   // its index
	Deltas       []string // deltas applied, oldest first
	WALFrom      uint64   // first WAL index applied (or wanted, when no record was)
	WALRecords   int64    // WAL records applied
	TornTail     bool     // the WAL ends in a torn tail, which replay stopped at
}

// ReplayResult is what Replay rebuilt and wrote.
type ReplayResult struct {
	State
	Out *checkpoint.Info // the checkpoint written to ReplayOptions.Out, if any
}

// Replay rebuilds the state of dir at opts.ToIndex in memory with
// replay.Dir (manifest -> base -> deltas -> WAL tail), stopping at a torn
// tail rather than failing, and describes it; with opts.Out it writes the
// state there as a checkpoint (point-in-time recovery). The whole state is
// held in memory. It never writes to dir (unless Out is inside it). An
// index the retained files do not cover is an error wrapping
// replay.ErrNotCovered or replay.ErrGap; Covered says what they cover.
func Replay(fsys vfs.FS, dir string, opts ReplayOptions) (*ReplayResult, error) {
	if err := checkOut(fsys, opts); err != nil {
		return nil, err
	}
	mem := replay.NewMemory()
	res, err := replay.Dir(fsys, dir, replay.Options{ToIndex: opts.ToIndex, StopAtTornTail: true}, mem)
	if err != nil {
		return nil, err
	}
	out := &ReplayResult{State: stateOf(res, mem)}
	if opts.Out == "" {
		return out, nil
	}
	info, err := writeOut(fsys, dir, res, mem, opts)
	if err != nil {
		return nil, err
	}
	out.Out = &info
	return out, nil
}

func stateOf(res replay.DirResult, mem *replay.Memory) State {
	return State{
		AppliedIndex: res.AppliedIndex, Keys: mem.Len(), StateHash: mem.Hash(),
		Base: res.Base, BaseIndex: res.BaseIndex, Deltas: res.Deltas,
		WALFrom: res.WALFrom, WALRecords: res.Records, TornTail: res.TornTail,
	}
}

// checkOut refuses an existing output file before any work is done.
func checkOut(fsys vfs.FS, opts ReplayOptions) error {
	if opts.Out == "" || opts.Overwrite {
		return nil
	}
	_, err := fsys.Stat(opts.Out)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s", ErrExists, opts.Out)
	case vfs.IsNotExist(err):
		return nil
	}
	return err
}

// writeOut writes the state as a checkpoint at opts.Out.
func writeOut(fsys vfs.FS, dir string, res replay.DirResult, mem *replay.Memory, opts ReplayOptions) (checkpoint.Info, error) {
	if idx, ok := format.ParseCheckpointName(filepath.Base(opts.Out)); ok && idx != res.AppliedIndex {
		return checkpoint.Info{}, fmt.Errorf("%w: %s is named like the checkpoint at index %d, but the state is at index %d; choose another name",
			ErrOutName, opts.Out, idx, res.AppliedIndex)
	}
	meta, err := outMeta(fsys, dir, res)
	if err != nil {
		return checkpoint.Info{}, err
	}
	return checkpoint.WriteFile(fsys, opts.Out, meta, checkpoint.SourceFunc(mem.Ascend), checkpoint.Options{Progress: opts.Progress})
}

// outMeta is the checkpoint metadata of a rebuilt state: the manifest's
// store and shards, and the term of the entry at the applied index.
func outMeta(fsys vfs.FS, dir string, res replay.DirResult) (checkpoint.Meta, error) {
	man, err := manifest.Load(fsys, dir)
	if err != nil {
		return checkpoint.Meta{}, err
	}
	term, err := termAt(fsys, dir, res)
	if err != nil {
		return checkpoint.Meta{}, err
	}
	return checkpoint.Meta{StoreID: man.StoreID, Index: res.AppliedIndex, Term: term, Shards: man.Shards}, nil
}

// termAt finds the term of the entry at the applied index: from the WAL
// segment holding it, or from the last snapshot file applied.
func termAt(fsys vfs.FS, dir string, res replay.DirResult) (uint64, error) {
	snap := filepath.Join(dir, format.SnapDir)
	switch {
	case res.Records > 0:
		return segmentTerm(fsys, filepath.Join(dir, format.WALDir), res.AppliedIndex)
	case len(res.Deltas) > 0:
		info, err := delta.ReadInfo(fsys, filepath.Join(snap, res.Deltas[len(res.Deltas)-1]))
		return info.Meta.Term, err
	case res.Base != "":
		info, err := checkpoint.ReadInfo(fsys, filepath.Join(snap, res.Base))
		return info.Meta.Term, err
	}
	return 0, nil
}
