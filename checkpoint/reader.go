package checkpoint

import (
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// Reader reads a checkpoint: point lookups and range scans decode only the
// blocks they need. Besides Get and Ascend it has the methods of
// table.KindReader: Meta (what the checkpoint records about its state),
// Info (a description of the checkpoint), NewIter (an iterator over the
// pairs with start <= key < end; nil bounds are open) and Close.
type Reader struct{ *reader }

// reader is the table reader of the checkpoint kind.
type reader = table.KindReader[Meta, Info]

// Open opens the checkpoint at path, reading its header, footer and index,
// and checks that they agree (and with the file name). Damage is a
// *format.CorruptionError.
func Open(fs vfs.FS, path string) (*Reader, error) {
	r, err := Kind.Open(fs, path)
	if err != nil {
		return nil, err
	}
	return &Reader{r}, nil
}

// Get returns the value of key (the caller's to keep) and whether the
// checkpoint holds it.
func (r *Reader) Get(key []byte) ([]byte, bool, error) {
	v, _, found, err := r.reader.Get(key)
	return v, found, err
}

// Ascend calls fn for every pair in key order until fn returns false. The
// slices are valid only during the call.
func (r *Reader) Ascend(fn func(key, value []byte) bool) error {
	it := r.NewIter(nil, nil)
	for it.Next() {
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	return it.Close()
}

// Verify reads every byte of the checkpoint at path and reports every
// problem it finds (see table.Verify), including header, footer and file
// name disagreeing. The error is only for what stops verification.
func Verify(fs vfs.FS, path string, opts table.VerifyOptions) (*table.Report, error) {
	return Kind.Verify(fs, path, opts)
}

// List describes the checkpoints in dir, in index order, from their
// headers and footers. Temporary and other files are skipped; a checkpoint
// that cannot be read is listed with Err set.
func List(fs vfs.FS, dir string) ([]Info, error) { return Kind.List(fs, dir) }

// ReadInfo describes the checkpoint at path from its header and footer
// only, checking that they agree.
func ReadInfo(fs vfs.FS, path string) (Info, error) { return Kind.ReadInfo(fs, path) }
