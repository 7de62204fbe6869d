package delta

import (
	"path/filepath"
	"slices"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// Options tunes writing a delta (and the checkpoint Merge writes).
type Options = checkpoint.Options

// Getter is a frozen state: the store's root at the delta's To index.
type Getter interface {
	Get(key string) ([]byte, bool)
}

// Write writes the delta of meta.From..meta.To as dir/format.DeltaName(
// from, to) and publishes it durably: for every key of keys (the dirty
// set, in any order, duplicates allowed) the value src holds, or a
// tombstone if src does not hold it. keys is not modified.
func Write(fs vfs.FS, dir string, meta Meta, keys []string, src Getter, opts Options) (Info, error) {
	w, err := NewWriter(fs, filepath.Join(dir, format.DeltaName(meta.From, meta.To)), meta, opts)
	if err != nil {
		return Info{}, err
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	var kb []byte
	for _, k := range slices.Compact(sorted) {
		kb = append(kb[:0], k...)
		v, ok := src.Get(k)
		if !ok {
			err = w.Delete(kb)
		} else {
			err = w.Put(kb, v)
		}
		if err != nil {
			w.Cancel()
			return Info{}, err
		}
	}
	return w.Close()
}

// Writer streams changes into a delta file: Put records that a key holds
// a value at To, Delete that it is absent at To (keys strictly
// ascending); Close publishes the delta durably and describes it, Cancel
// abandons it and removes its temporary file.
type Writer = table.KindWriter[Meta, Info]

// NewWriter starts the delta that Close publishes at path.
func NewWriter(fs vfs.FS, path string, meta Meta, opts Options) (*Writer, error) {
	return Kind.NewWriter(fs, path, meta, opts.TableOptions(Kind.Magic, nil), opts.Progress)
}
