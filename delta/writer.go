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
		if err := w.add(kb, v, ok); err != nil {
			w.Cancel()
			return Info{}, err
		}
	}
	return w.Close()
}

// Writer streams changes into a delta file.
type Writer struct {
	w *table.KindWriter[Meta, Info]
}

// NewWriter starts the delta that Close publishes at path.
func NewWriter(fs vfs.FS, path string, meta Meta, opts Options) (*Writer, error) {
	w, err := Kind.NewWriter(fs, path, meta, opts.TableOptions(Kind.Magic, nil), opts.Progress)
	if err != nil {
		return nil, err
	}
	return &Writer{w}, nil
}

// Put records that key holds value at To; keys must be strictly ascending.
func (w *Writer) Put(key, value []byte) error { return w.w.Add(key, value, format.EntryPut) }

// Delete records that key is absent at To.
func (w *Writer) Delete(key []byte) error { return w.w.Add(key, nil, format.EntryDelete) }

// add is Put, or Delete if !put.
func (w *Writer) add(key, value []byte, put bool) error {
	if put {
		return w.Put(key, value)
	}
	return w.Delete(key)
}

// Close publishes the delta durably and describes it.
func (w *Writer) Close() (Info, error) { return w.w.Close() }

// Cancel abandons the delta and removes its temporary file.
func (w *Writer) Cancel() { w.w.Cancel() }
