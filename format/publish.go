package format

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/kvtool/kvtool/vfs"
)

// AtomicFile is a sink that writes a whole file under a temporary name and
// publishes it durably under its final name on Close: fsync the file, rename
// it over the final name, fsync the directory (PublishFile). The directory
// must exist durably (MkdirAllDurable). Until Close returns nil a
// reader sees either the old file or none, never a partial one. It is the one
// way every package writes a whole file.
type AtomicFile struct {
	fs     vfs.FS
	path   string // final path
	tmp    string // temporary path
	f      vfs.File
	n      int64
	err    error // sticky: the first write error
	closed bool

	// Early write-back (SetWriteback): every wbStep bytes, the new bytes
	// are handed to the disk and the step before them waited for.
	wbStep   int64
	wbOff    int64 // bytes handed to write-back so far
	wbWaited int64 // bytes whose write-back was waited for
}

// SetWriteback makes the file start writing its bytes back to disk every
// step bytes as they are written, waiting for the step before, where the
// file system can (vfs.WritebackStarter); 0 turns it off. A large file
// written beside a store's WAL then reaches the disk in small pieces
// over the time it is written, instead of in one flush at Close that the
// WAL's fdatasync would queue behind. Close still fsyncs the whole file.
func (a *AtomicFile) SetWriteback(step int64) { a.wbStep = step }

// writeback runs the early write-back of the bytes written since the last
// step; an error is a write error (the file is not published).
func (a *AtomicFile) writeback() error {
	ws, ok := a.f.(vfs.WritebackStarter)
	if !ok || a.wbStep <= 0 || a.n-a.wbOff < a.wbStep {
		return nil
	}
	if a.wbOff > a.wbWaited {
		if err := ws.StartWriteback(a.wbWaited, a.wbOff-a.wbWaited, true); err != nil {
			return err
		}
		a.wbWaited = a.wbOff
	}
	if err := ws.StartWriteback(a.wbOff, a.n-a.wbOff, false); err != nil {
		return err
	}
	a.wbOff = a.n
	return nil
}

// CreateAtomic starts writing the file that will be published at path.
func CreateAtomic(fs vfs.FS, path string) (*AtomicFile, error) {
	f, tmp, err := CreateTemp(fs, path, rand.Uint64())
	if err != nil {
		return nil, err
	}
	return &AtomicFile{fs: fs, path: path, tmp: tmp, f: f}, nil
}

// ErrAtomicClosed is returned by a Write after Close or Cancel.
var ErrAtomicClosed = errors.New("kvtool/format: write to a closed atomic file")

// Write appends p to the file. A write error is sticky: every later Write
// and Close return it.
func (a *AtomicFile) Write(p []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	if a.closed {
		return 0, ErrAtomicClosed // not sticky: the file was published
	}
	off := a.n
	n, err := a.f.Write(p)
	a.n += int64(n)
	if err == nil {
		err = a.writeback()
	}
	if err != nil {
		a.err = fmt.Errorf("write %s at offset %d: %w", a.tmp, off, err)
	}
	return n, a.err
}

// Offset returns the number of bytes written so far.
func (a *AtomicFile) Offset() int64 { return a.n }

// Path returns the final path.
func (a *AtomicFile) Path() string { return a.path }

// Close publishes the file durably (PublishFile). If any step fails the
// temporary file is removed and the error returned; the final path is
// untouched unless the rename itself happened, in which case only the
// directory sync failed and the caller must treat the result as unknown
// (fail stop). Calling Close again after a success is a no-op.
func (a *AtomicFile) Close() error {
	if a.closed {
		return a.err
	}
	a.closed = true
	if a.err != nil {
		a.discard()
		return a.err
	}
	err := PublishFile(a.fs, a.f, a.tmp, a.path)
	if cerr := a.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", a.path, cerr)
	}
	if err != nil {
		return a.fail(err)
	}
	return nil
}

// Cancel abandons the file and removes the temporary file. It is safe after
// Close (then it does nothing).
func (a *AtomicFile) Cancel() error {
	if a.closed {
		return nil
	}
	a.closed = true
	a.discard()
	if a.err == nil {
		a.err = errors.New("kvtool/format: atomic file cancelled")
	}
	return nil
}

func (a *AtomicFile) discard() {
	a.f.Close()
	a.fs.Remove(a.tmp)
}

func (a *AtomicFile) fail(err error) error {
	a.err = err
	return err
}

// WriteFileAtomic publishes data at path durably in one call.
func WriteFileAtomic(fs vfs.FS, path string, data []byte) error {
	a, err := CreateAtomic(fs, path)
	if err != nil {
		return err
	}
	if _, err := a.Write(data); err != nil {
		a.Cancel()
		return err
	}
	return a.Close()
}
