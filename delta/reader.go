package delta

import (
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// Reader reads a delta. Besides Get and ForEach it has the methods of
// table.KindReader: Meta (what the delta records about its range), Info (a
// description of the delta), NewIter (an iterator over the entries with
// start <= key < end; nil bounds are open) and Close.
type Reader struct{ *reader }

// reader is the table reader of the delta kind.
type reader = table.KindReader[Meta, Info]

// Open opens the delta at path, reading its header, footer and index, and
// checks that they agree (and with the file name).
func Open(fs vfs.FS, path string) (*Reader, error) {
	r, err := Kind.Open(fs, path)
	if err != nil {
		return nil, err
	}
	return &Reader{r}, nil
}

// Get returns key's entry: found with format.EntryPut and its value at To,
// found with format.EntryDelete if the delta deletes it, or not found if
// the key did not change in the delta's range.
func (r *Reader) Get(key []byte) (value []byte, kind format.EntryKind, found bool, err error) {
	return r.reader.Get(key)
}

// ForEach calls fn for every entry in key order — a put with its value, or
// a tombstone — until fn returns an error, which ForEach returns. Replay
// applies a chain by calling it on each delta in order. The slices are
// valid only during the call.
func (r *Reader) ForEach(fn func(kind format.EntryKind, key, value []byte) error) error {
	it := r.NewIter(nil, nil)
	for it.Next() {
		if err := fn(it.Kind(), it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// Verify reads every byte of the delta at path and reports every problem
// it finds (see table.Verify), including header, footer and file name
// disagreeing. The error is only for what stops verification.
func Verify(fs vfs.FS, path string, opts table.VerifyOptions) (*table.Report, error) {
	return Kind.Verify(fs, path, opts)
}

// ReadInfo describes the delta at path from its header and footer only.
func ReadInfo(fs vfs.FS, path string) (Info, error) { return Kind.ReadInfo(fs, path) }

// List describes the deltas in dir in name order (by from index, then to
// index), from their headers and footers. Temporary and other files are
// skipped; a delta that cannot be read is listed with Err set.
func List(fs vfs.FS, dir string) ([]Info, error) { return Kind.List(fs, dir) }
