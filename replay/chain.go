package replay

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/delta"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/vfs"
)

// ErrNotCovered is returned (wrapped) when the wanted index is outside what
// the retained files (base checkpoint and WAL) cover.
var ErrNotCovered = errors.New("kvtool/replay: index not covered by the retained files")

// Options tune Dir.
type Options struct {
	ToIndex        uint64 // rebuild the state at this index (0: everything durable)
	StopAtTornTail bool   // see WALOptions
}

// BaseLoader is a Target that takes the base checkpoint whole: Snapshot
// hands it the open checkpoint instead of calling Apply once per pair, so
// it can decode the blocks in parallel (Reader.Blocks) and build its state
// without sorting, the checkpoint being in key order already. LoadBase is
// called at most once, before any Apply; an error from it (a damaged block
// names the file and offset) ends the replay.
type BaseLoader interface {
	Target
	LoadBase(r *checkpoint.Reader) error
}

// Chain is what Snapshot applied: the base and the deltas.
type Chain struct {
	Base      string   `json:"base,omitempty"` // base checkpoint file name
	BaseIndex uint64   `json:"base_index"`
	Deltas    []string `json:"deltas,omitempty"` // delta file names applied, oldest first
	Index     uint64   `json:"index"`            // index the base and deltas brought the state to
	FileTerm  uint64   `json:"file_term"`        // term recorded in the last file applied
}

// DirResult says what Dir applied.
type DirResult struct {
	Chain
	Result         // the WAL part; AppliedIndex is the final applied index
	WALFrom uint64 `json:"wal_from"` // first WAL index applied
}

// Dir rebuilds the state of data directory dir into t: manifest -> base
// checkpoint -> deltas -> WAL tail, up to opts.ToIndex. It is the one
// recovery path: the store's open and `kvtool replay` both use it. It never
// writes.
func Dir(fsys vfs.FS, dir string, opts Options, t Target) (DirResult, error) {
	var res DirResult
	man, err := manifest.Load(fsys, dir)
	if err != nil {
		return res, err
	}
	if res.Chain, err = Snapshot(fsys, dir, man, opts.ToIndex, t); err != nil {
		return res, err
	}
	if opts.ToIndex != 0 && opts.ToIndex == res.Chain.Index {
		res.AppliedIndex, res.Result.Term = res.Chain.Index, res.Chain.FileTerm
		return res, nil
	}
	res.WALFrom = res.Chain.Index + 1
	walDir := filepath.Join(dir, format.WALDir)
	res.Result, err = WAL(fsys, walDir, res.WALFrom, opts.ToIndex, t, WALOptions{StopAtTornTail: opts.StopAtTornTail})
	if errors.Is(err, ErrGap) {
		return res, fmt.Errorf("%w: %w", ErrNotCovered, err)
	} else if err != nil {
		return res, err
	}
	if res.Records == 0 {
		res.Result.Term = res.Chain.FileTerm
	}
	if opts.ToIndex != 0 && res.AppliedIndex < opts.ToIndex {
		return res, fmt.Errorf("%w: index %d is past the end of the log (last index %d)", ErrNotCovered, opts.ToIndex, res.AppliedIndex)
	}
	return res, nil
}

// Snapshot applies the base checkpoint and the deltas the manifest names,
// stopping before the first delta that ends past toIndex (0: all of them),
// and returns what it applied. The WAL must supply the rest: entries from
// Chain.Index+1.
func Snapshot(fsys vfs.FS, dir string, man *manifest.Manifest, toIndex uint64, t Target) (Chain, error) {
	var c Chain
	if man.Base != nil {
		if toIndex != 0 && toIndex < man.Base.Index {
			return c, fmt.Errorf("%w: index %d is before the base checkpoint %s at %d; the retained files cover %d and later",
				ErrNotCovered, toIndex, man.Base.Name, man.Base.Index, man.Base.Index)
		}
		term, err := applyBase(fsys, dir, *man.Base, t)
		if err != nil {
			return c, err
		}
		c.FileTerm = term
		c.Base, c.BaseIndex, c.Index = man.Base.Name, man.Base.Index, man.Base.Index
	}
	for _, d := range man.Deltas {
		if toIndex != 0 && d.Index > toIndex {
			break
		}
		term, err := applyDelta(fsys, dir, d, t)
		if err != nil {
			return c, err
		}
		c.FileTerm = term
		c.Deltas = append(c.Deltas, d.Name)
		c.Index = d.Index
	}
	if c.Index+1 < man.WALFirstIndex {
		return c, fmt.Errorf("%w: the state from files ends at %d but the WAL starts at %d", ErrNotCovered, c.Index, man.WALFirstIndex)
	}
	return c, nil
}

// applyBase applies the base checkpoint and returns its term.
func applyBase(fsys vfs.FS, dir string, ref manifest.FileRef, t Target) (uint64, error) {
	path := filepath.Join(dir, format.SnapDir, ref.Name)
	r, err := checkpoint.Open(fsys, path)
	if err != nil {
		return 0, fmt.Errorf("base checkpoint named by the manifest: %w", err)
	}
	defer r.Close()
	if err := checkRef(path, ref, r.Info().Meta.Index, r.Info().Checksum); err != nil {
		return 0, err
	}
	if bl, ok := t.(BaseLoader); ok {
		return r.Meta().Term, bl.LoadBase(r)
	}
	return r.Meta().Term, r.Ascend(func(key, value []byte) bool {
		t.Apply(format.TxnPut, key, value)
		return true
	})
}

// applyDelta applies one delta and returns its term.
func applyDelta(fsys vfs.FS, dir string, ref manifest.FileRef, t Target) (uint64, error) {
	path := filepath.Join(dir, format.SnapDir, ref.Name)
	r, err := delta.Open(fsys, path)
	if err != nil {
		return 0, fmt.Errorf("delta named by the manifest: %w", err)
	}
	defer r.Close()
	if m := r.Meta(); m.From != ref.FromIndex {
		return 0, format.Corruptf(path, 0, "delta covers (%d, %d], the manifest says (%d, %d]", m.From, m.To, ref.FromIndex, ref.Index)
	}
	if err := checkRef(path, ref, r.Meta().To, r.Info().Checksum); err != nil {
		return 0, err
	}
	return r.Meta().Term, r.ForEach(func(kind format.EntryKind, key, value []byte) error {
		if kind == format.EntryDelete {
			t.Apply(format.TxnDelete, key, nil)
		} else {
			t.Apply(format.TxnPut, key, value)
		}
		return nil
	})
}

// checkRef checks that a file is the one the manifest names: same index and
// whole-file checksum (a file replaced under the same name is caught here).
func checkRef(path string, ref manifest.FileRef, index, checksum uint64) error {
	if index != ref.Index || checksum != ref.Checksum {
		return format.Corruptf(path, 0, "file is at index %d with checksum %016x, the manifest names index %d checksum %016x",
			index, checksum, ref.Index, ref.Checksum)
	}
	return nil
}
