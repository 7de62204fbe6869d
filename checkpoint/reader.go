package checkpoint

import (
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// Reader reads a checkpoint: point lookups and range scans decode only the
// blocks they need.
type Reader struct {
	t    *table.Reader
	meta Meta
	info Info
}

// Open opens the checkpoint at path, reading its header, footer and index,
// and checks that they agree (and with the file name). Damage is a
// *format.CorruptionError.
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

// wrap prefixes an error with the package name unless it is corruption,
// which already names the file and offset.
func wrap(err error) error {
	if format.AsCorruption(err) != nil {
		return err
	}
	return fmt.Errorf("kvtool/checkpoint: %w", err)
}

// Meta returns what the checkpoint records about its state.
func (r *Reader) Meta() Meta { return r.meta }

// Info describes the checkpoint.
func (r *Reader) Info() Info { return r.info }

// Get returns the value of key (the caller's to keep) and whether the
// checkpoint holds it.
func (r *Reader) Get(key []byte) ([]byte, bool, error) {
	v, _, found, err := r.t.Get(key)
	return v, found, err
}

// NewIter returns an iterator over the pairs with start <= key < end (nil
// bounds are open); see table.Iter.
func (r *Reader) NewIter(start, end []byte) *table.Iter { return r.t.NewIter(start, end) }

// Ascend calls fn for every pair in key order until fn returns false. The
// slices are valid only during the call.
func (r *Reader) Ascend(fn func(key, value []byte) bool) error {
	it := r.t.NewIter(nil, nil)
	for it.Next() {
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	return it.Close()
}

// Close closes the file.
func (r *Reader) Close() error { return r.t.Close() }

// Verify reads every byte of the checkpoint at path and reports every
// problem it finds (see table.Verify), including header, footer and file
// name disagreeing. The error is only for what stops verification.
func Verify(fs vfs.FS, path string, opts table.VerifyOptions) (*table.Report, error) {
	rep, err := table.Verify(fs, path, opts)
	if err != nil {
		return rep, wrap(err)
	}
	if rep.HeaderOK {
		checkReport(rep)
	}
	return rep, nil
}

// checkReport adds the checkpoint-specific problems to a table report.
func checkReport(rep *table.Report) {
	if rep.Header.Magic != format.MagicCheckpoint {
		rep.Addf(0, "not a checkpoint (magic %q)", rep.Header.Magic)
		return
	}
	m, err := parseExt(rep.Header.Ext, rep.Path)
	if err == nil && rep.FooterOK {
		err = checkFooter(m, rep.Footer)
	} else if err == nil {
		err = checkName(m, rep.Path)
	}
	if ce := format.AsCorruption(err); ce != nil {
		rep.Addf(ce.Offset, "%s", ce.Reason)
	}
}

// List describes the checkpoints in dir, in index order, from their
// headers and footers. Temporary and other files are skipped; a checkpoint
// that cannot be read is listed with Err set.
func List(fs vfs.FS, dir string) ([]Info, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("kvtool/checkpoint: %w", err)
	}
	var out []Info
	for _, name := range names {
		if _, ok := format.ParseCheckpointName(name); ok {
			out = append(out, describe(fs, filepath.Join(dir, name)))
		}
	}
	return out, nil
}

func describe(fs vfs.FS, path string) Info {
	ti, err := table.ReadInfo(fs, path)
	if err == nil {
		var m Meta
		if m, err = metaOf(ti); err == nil {
			return infoOf(ti, m)
		}
	}
	return Info{Name: filepath.Base(path), Path: path, Err: wrap(err)}
}

// ReadInfo describes the checkpoint at path from its header and footer
// only, checking that they agree.
func ReadInfo(fs vfs.FS, path string) (Info, error) {
	i := describe(fs, path)
	return i, i.Err
}
