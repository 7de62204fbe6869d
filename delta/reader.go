package delta

import (
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// Reader reads a delta.
type Reader struct {
	t    *table.Reader
	meta Meta
	info Info
}

// Open opens the delta at path, reading its header, footer and index, and
// checks that they agree (and with the file name).
func Open(fs vfs.FS, path string) (*Reader, error) {
	t, err := table.Open(fs, path)
	if err != nil {
		return nil, wrap(err)
	}
	m, err := metaOf(t.Info())
	if err != nil {
		t.Close()
		return nil, err
	}
	return &Reader{t: t, meta: m, info: infoOf(t.Info(), m)}, nil
}

func wrap(err error) error {
	if err == nil || format.AsCorruption(err) != nil {
		return err
	}
	return fmt.Errorf("kvtool/delta: %w", err)
}

// Meta returns what the delta records about its range.
func (r *Reader) Meta() Meta { return r.meta }

// Info describes the delta.
func (r *Reader) Info() Info { return r.info }

// Get returns key's entry: found with format.EntryPut and its value at To,
// found with format.EntryDelete if the delta deletes it, or not found if
// the key did not change in the delta's range.
func (r *Reader) Get(key []byte) (value []byte, kind format.EntryKind, found bool, err error) {
	return r.t.Get(key)
}

// NewIter returns an iterator over the entries with start <= key < end
// (nil bounds are open); see table.Iter.
func (r *Reader) NewIter(start, end []byte) *table.Iter { return r.t.NewIter(start, end) }

// ForEach calls fn for every entry in key order — a put with its value, or
// a tombstone — until fn returns an error, which ForEach returns. Replay
// applies a chain by calling it on each delta in order. The slices are
// valid only during the call.
func (r *Reader) ForEach(fn func(kind format.EntryKind, key, value []byte) error) error {
	it := r.t.NewIter(nil, nil)
	for it.Next() {
		if err := fn(it.Kind(), it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// Close closes the file.
func (r *Reader) Close() error { return r.t.Close() }

// Verify reads every byte of the delta at path and reports every problem
// it finds (see table.Verify), including header, footer and file name
// disagreeing. The error is only for what stops verification.
func Verify(fs vfs.FS, path string, opts table.VerifyOptions) (*table.Report, error) {
	rep, err := table.Verify(fs, path, opts)
	if err != nil {
		return rep, wrap(err)
	}
	if !rep.HeaderOK {
		return rep, nil
	}
	if rep.Header.Magic != format.MagicDelta {
		rep.Addf(0, "not a delta (magic %q)", rep.Header.Magic)
		return rep, nil
	}
	m, err := parseExt(rep.Header.Ext, path)
	if err == nil && rep.FooterOK {
		err = checkFooter(m, rep.Footer)
	} else if err == nil {
		err = checkName(m, path)
	}
	if ce := format.AsCorruption(err); ce != nil {
		rep.Addf(ce.Offset, "%s", ce.Reason)
	}
	return rep, nil
}

// ReadInfo describes the delta at path from its header and footer only.
func ReadInfo(fs vfs.FS, path string) (Info, error) {
	ti, err := table.ReadInfo(fs, path)
	if err != nil {
		return Info{Name: filepath.Base(path), Path: path, Err: wrap(err)}, wrap(err)
	}
	m, err := metaOf(ti)
	if err != nil {
		return Info{Name: filepath.Base(path), Path: path, Err: err}, err
	}
	return infoOf(ti, m), nil
}

// List describes the deltas in dir in name order (by from index, then to
// index), from their headers and footers. Temporary and other files are
// skipped; a delta that cannot be read is listed with Err set.
func List(fs vfs.FS, dir string) ([]Info, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("kvtool/delta: %w", err)
	}
	var out []Info
	for _, name := range names {
		if _, _, ok := format.ParseDeltaName(name); ok {
			info, _ := ReadInfo(fs, filepath.Join(dir, name))
			out = append(out, info)
		}
	}
	return out, nil
}
