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
// Errors that are not corruption start with "kvtool/<Noun>: ";
// corruption is a *format.CorruptionError naming the file and offset.
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
	// Describe returns the kind's description of a file.
	Describe func(f FileInfo[M]) I
}

// FileInfo is what a file of some kind says about itself: its table's
// header and footer and the kind's metadata, or why they could not be
// read.
type FileInfo[M any] struct {
	Path  string
	Table Info // zero if Err is set
	Meta  M    // zero if Err is set
	Err   error
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
	info := k.Describe(FileInfo[M]{Path: path, Table: t.Info(), Meta: m})
	return &KindReader[M, I]{Reader: t, meta: m, info: info}, nil
}

// ReadInfo describes the file at path from its header and footer only,
// checking that they agree. On error the description holds the error.
func (k *Kind[M, I]) ReadInfo(fs vfs.FS, path string) (I, error) {
	f := k.fileInfo(fs, path)
	return k.Describe(f), f.Err
}

func (k *Kind[M, I]) fileInfo(fs vfs.FS, path string) FileInfo[M] {
	ti, err := ReadInfo(fs, path)
	if err != nil {
		return FileInfo[M]{Path: path, Err: k.wrap(err)}
	}
	m, err := k.metaOf(ti)
	if err != nil {
		return FileInfo[M]{Path: path, Err: k.wrap(err)}
	}
	return FileInfo[M]{Path: path, Table: ti, Meta: m}
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
			out = append(out, k.Describe(k.fileInfo(fs, filepath.Join(dir, name))))
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

// Add appends an entry; keys must be strictly ascending (see Writer.Add).
func (w *KindWriter[M, I]) Add(key, value []byte, kind format.EntryKind) error {
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
	return w.k.Describe(FileInfo[M]{Path: ti.Path, Table: ti, Meta: w.meta}), nil
}

// Cancel abandons the file and removes its temporary file.
func (w *KindWriter[M, I]) Cancel() { w.tw.Cancel() }
