package delta

import (
	"fmt"
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
	tw   *table.Writer
	meta Meta
	opts Options
	keys int64
}

// NewWriter starts the delta that Close publishes at path.
func NewWriter(fs vfs.FS, path string, meta Meta, opts Options) (*Writer, error) {
	if err := meta.check(); err != nil {
		return nil, err
	}
	topts := opts.TableOptions(format.MagicDelta, meta.appendExt(nil))
	topts.Index, topts.FromIndex, topts.Term = meta.To, meta.From, meta.Term
	tw, err := table.NewWriter(fs, path, topts)
	if err != nil {
		return nil, fmt.Errorf("kvtool/delta: %w", err)
	}
	return &Writer{tw: tw, meta: meta, opts: opts}, nil
}

// Put records that key holds value at To; keys must be strictly ascending.
func (w *Writer) Put(key, value []byte) error { return w.add(key, value, true) }

// Delete records that key is absent at To.
func (w *Writer) Delete(key []byte) error { return w.add(key, nil, false) }

func (w *Writer) add(key, value []byte, put bool) error {
	kind := format.EntryPut
	if !put {
		kind, value = format.EntryDelete, nil
	}
	if err := w.tw.Add(key, value, kind); err != nil {
		return fmt.Errorf("kvtool/delta: %w", err)
	}
	w.keys++
	if w.opts.Progress != nil && w.keys%4096 == 0 {
		w.opts.Progress(w.keys, w.tw.Offset())
	}
	return nil
}

// Close publishes the delta durably and describes it.
func (w *Writer) Close() (Info, error) {
	ti, err := w.tw.Close()
	if err != nil {
		return Info{}, fmt.Errorf("kvtool/delta: %w", err)
	}
	if w.opts.Progress != nil {
		w.opts.Progress(w.keys, ti.Size)
	}
	return infoOf(ti, w.meta), nil
}

// Cancel abandons the delta and removes its temporary file.
func (w *Writer) Cancel() { w.tw.Cancel() }
