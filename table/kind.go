package table

import (
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// Kind is one kind of table file: checkpoints and deltas are two. M is the
// kind's metadata, which its header ext holds, and I the kind's
// description of a file. A Kind says only what differs between kinds —
// the magic, the ext's fields, the footer fields and file name the
// metadata implies — and its methods do the rest the same way for every
// kind: write, open, describe, list and verify, checking that header,
// footer and file name agree.
//
// Every field must be set. Errors that are not corruption start with
// "kvtool/<Noun>: "; corruption is a *format.CorruptionError naming the
// file and offset. A Kind is read-only once built, so safe to share.
type Kind[M, I any] struct {
	// Noun names the kind in messages ("checkpoint", "delta").
	Noun string
	// Magic is the kind's file header magic.
	Magic string
	// IsName reports whether a file name is one of the kind's: List lists
	// those.
	IsName func(name string) bool
	// Ext hands the fields of m to c in the order of the header ext (see
	// ExtCodec).
	Ext func(c *ExtCodec, m *M)
	// Check says why m cannot be recorded, or nil: NewWriter returns it
	// wrapped in ErrBadMeta, and a header that holds such an m is
	// corruption.
	Check func(m M) error
	// ErrBadMeta is the kind's error for metadata it cannot record.
	ErrBadMeta error
	// Footer returns the footer fields m implies: the applied index, the
	// exclusive lower bound of the range covered, and the term.
	Footer func(m M) (index, fromIndex, term uint64)
	// CheckFooter checks that a file's footer agrees with its header's m;
	// damage is a *format.CorruptionError.
	CheckFooter func(m M, footer Info) error
	// CheckName checks that a file named like one of the kind's carries
	// the m its name says; damage is a *format.CorruptionError.
	CheckName func(m M, path string) error
	// Describe returns the kind's description of a file: f, and what the
	// kind takes from t, its table's header and footer (zero if f.Err is
	// set).
	Describe func(f File[M], t Info) I
}

// File describes a file of some kind: what every kind's description holds.
type File[M any] struct {
	Name     string // file name
	Path     string
	Meta     M
	Size     int64 // bytes
	Blocks   int
	Checksum uint64 // whole-file checksum from the footer
	// Err is set for a file whose header or footer could not be read (List
	// lists such a file too); the other fields but Name and Path are then
	// zero.
	Err error
}

// describe returns the kind's description of the file at path: its table
// t and metadata m, or err.
func (k *Kind[M, I]) describe(path string, t Info, m M, err error) I {
	f := File[M]{Name: filepath.Base(path), Path: path, Err: err}
	if err != nil {
		return k.Describe(f, Info{})
	}
	f.Meta, f.Size, f.Blocks, f.Checksum = m, t.Size, t.Blocks, t.Checksum
	return k.Describe(f, t)
}

// errorf prefixes an error with the kind's package.
func (k *Kind[M, I]) errorf(err error) error {
	return fmt.Errorf("kvtool/%s: %w", k.Noun, err)
}

// wrap is errorf, except that corruption, which names its file and offset
// already, is returned as it is.
func (k *Kind[M, I]) wrap(err error) error {
	if err == nil || format.AsCorruption(err) != nil {
		return err
	}
	return k.errorf(err)
}

// metaOf reads the kind's metadata from a table's header and checks that
// header, footer and file name agree.
func (k *Kind[M, I]) metaOf(info Info) (M, error) {
	if info.Magic != k.Magic {
		var zero M
		return zero, format.Corruptf(info.Path, 0, "not a %s (magic %q)", k.Noun, info.Magic)
	}
	m, err := k.ParseExt(info.Ext, info.Path)
	if err != nil {
		return m, err
	}
	if err := k.CheckFooter(m, info); err != nil {
		return m, err
	}
	return m, k.CheckName(m, info.Path)
}

// KindReader is a Reader of one kind of file, with the kind's metadata and
// description. It is safe for concurrent Get and NewIter calls.
type KindReader[M, I any] struct {
	*Reader
	meta M
	info I
}

// Meta returns the kind's metadata from the header.
func (r *KindReader[M, I]) Meta() M { return r.meta }

// Info returns the kind's description of the file (Reader.Info says what
// the table's header and footer say).
func (r *KindReader[M, I]) Info() I { return r.info }

// Open opens the file at path, reading its header, footer and index, and
// checks that header, footer and file name agree.
func (k *Kind[M, I]) Open(fs vfs.FS, path string) (*KindReader[M, I], error) {
	t, err := Open(fs, path)
	if err != nil {
		return nil, k.wrap(err)
	}
	m, err := k.metaOf(t.Info())
	if err != nil {
		t.Close()
		return nil, err
	}
	info := k.describe(path, t.Info(), m, nil)
	return &KindReader[M, I]{Reader: t, meta: m, info: info}, nil
}

// ReadInfo describes the file at path from its header and footer only,
// checking that they agree. On error the description holds the error.
func (k *Kind[M, I]) ReadInfo(fs vfs.FS, path string) (I, error) {
	ti, err := ReadInfo(fs, path)
	var m M
	if err == nil {
		m, err = k.metaOf(ti)
	}
	err = k.wrap(err)
	return k.describe(path, ti, m, err), err
}

// List describes the kind's files in dir in name order, from their
// headers and footers. Temporary and other files are skipped; a file that
// cannot be read is described with its error.
func (k *Kind[M, I]) List(fs vfs.FS, dir string) ([]I, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, k.errorf(err)
	}
	var out []I
	for _, name := range names {
		if k.IsName(name) {
			i, _ := k.ReadInfo(fs, filepath.Join(dir, name))
			out = append(out, i)
		}
	}
	return out, nil
}

// Verify reads every byte of the file at path and reports every problem it
// finds (see Verify), including header, footer and file name disagreeing.
// The error is only for what stops verification.
func (k *Kind[M, I]) Verify(fs vfs.FS, path string, opts VerifyOptions) (*Report, error) {
	rep, err := Verify(fs, path, opts)
	if err != nil {
		return rep, k.wrap(err)
	}
	if rep.HeaderOK {
		k.checkReport(rep)
	}
	return rep, nil
}

// checkReport adds the kind's problems to a report whose header is intact.
func (k *Kind[M, I]) checkReport(rep *Report) {
	if rep.Header.Magic != k.Magic {
		rep.Addf(0, "not a %s (magic %q)", k.Noun, rep.Header.Magic)
		return
	}
	m, err := k.ParseExt(rep.Header.Ext, rep.Path)
	if err == nil && rep.FooterOK {
		err = k.CheckFooter(m, rep.Footer)
	}
	if err == nil {
		err = k.CheckName(m, rep.Path)
	}
	if ce := format.AsCorruption(err); ce != nil {
		rep.Addf(ce.Offset, "%s", ce.Reason)
	}
}

// progressEvery is how many entries a KindWriter adds between two progress
// calls.
const progressEvery = 4096

// KindWriter streams the entries of one kind of file; it is owned by one
// goroutine.
type KindWriter[M, I any] struct {
	k        *Kind[M, I]
	tw       *Writer
	meta     M
	progress func(entries, bytes int64)
	n        int64 // entries added
}

// NewWriter starts the file of metadata m that Close publishes at path.
// opts says how to cut, compress and pace the blocks; NewWriter fills in
// its magic, ext and footer fields from the kind and m. progress, if set,
// is called every few thousand entries and at the end with the entries
// and the file bytes written so far.
func (k *Kind[M, I]) NewWriter(fs vfs.FS, path string, m M, opts WriterOptions, progress func(entries, bytes int64)) (*KindWriter[M, I], error) {
	if err := k.Check(m); err != nil {
		return nil, fmt.Errorf("%w: %v", k.ErrBadMeta, err)
	}
	opts.Magic, opts.Ext = k.Magic, k.AppendExt(nil, m)
	opts.Index, opts.FromIndex, opts.Term = k.Footer(m)
	tw, err := NewWriter(fs, path, opts)
	if err != nil {
		return nil, k.errorf(err)
	}
	return &KindWriter[M, I]{k: k, tw: tw, meta: m, progress: progress}, nil
}

// Put records that key holds value; keys must be strictly ascending (see
// Writer.Add).
func (w *KindWriter[M, I]) Put(key, value []byte) error { return w.add(key, value, format.EntryPut) }

// Delete records that key is absent (a tombstone).
func (w *KindWriter[M, I]) Delete(key []byte) error { return w.add(key, nil, format.EntryDelete) }

func (w *KindWriter[M, I]) add(key, value []byte, kind format.EntryKind) error {
	if err := w.tw.Add(key, value, kind); err != nil {
		return w.k.errorf(err)
	}
	w.n++
	if w.progress != nil && w.n%progressEvery == 0 {
		w.progress(w.n, w.tw.Offset())
	}
	return nil
}

// Close publishes the file durably and describes it. A second Close
// returns the first one's result.
func (w *KindWriter[M, I]) Close() (I, error) {
	ti, err := w.tw.Close()
	if err != nil {
		var zero I
		return zero, w.k.errorf(err)
	}
	if w.progress != nil {
		w.progress(w.n, ti.Size)
	}
	return w.k.describe(ti.Path, ti, w.meta, nil), nil
}

// Cancel abandons the file and removes its temporary file.
func (w *KindWriter[M, I]) Cancel() { w.tw.Cancel() }
