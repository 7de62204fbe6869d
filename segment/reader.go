package segment

import "github.com/kvtool/kvtool/vfs"

// List scans every segment in dir and describes them, oldest first.
func List(fsys vfs.FS, dir string) ([]SegmentInfo, error) { return nil, errNotImplemented }

// Reader iterates the entries of a log directory from an index on.
type Reader struct{}

// NewReader returns a Reader over the entries of dir with Index >= from.
func NewReader(fsys vfs.FS, dir string, from uint64) (*Reader, error) {
	return nil, errNotImplemented
}

// Next returns the next entry; io.EOF at the clean end of the log. Entry.Data
// is valid until the next call. Errors are sticky; damage is a
// *format.CorruptionError naming the file and offset.
func (r *Reader) Next() (Entry, error) { return Entry{}, errNotImplemented }

// Close releases the open file.
func (r *Reader) Close() error { return nil }
