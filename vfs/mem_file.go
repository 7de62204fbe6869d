package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// memFile is an open MemFS file. It reads and writes the inode's current
// bytes; it keeps working after its name is removed or renamed, as an open
// file descriptor does.
type memFile struct {
	fs       *MemFS
	ino      *inode
	name     string
	writable bool
	closed   atomic.Bool

	offMu sync.Mutex // guards off: Read and Write both move it
	off   int64
}

var errNegativeOffset = errors.New("negative offset")

func (f *memFile) Name() string { return f.name }

// Read reads from the handle's offset. Like *os.File it returns io.EOF only
// from a call that reads nothing.
func (f *memFile) Read(p []byte) (int, error) {
	if err := f.usable("read", false); err != nil {
		return 0, err
	}
	f.offMu.Lock()
	defer f.offMu.Unlock()
	n, err := f.readAt(p, f.off)
	f.off += int64(n)
	if n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads at off; it returns io.EOF with any short read.
func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.usable("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errNegativeOffset}
	}
	return f.readAt(p, off)
}

func (f *memFile) readAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Write writes at the handle's offset and advances it.
func (f *memFile) Write(p []byte) (int, error) {
	f.offMu.Lock()
	defer f.offMu.Unlock()
	n, err := f.write("write", p, f.off)
	f.off += int64(n)
	return n, err
}

// WriteAt writes at off without moving the handle's offset.
func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	return f.write("writeat", p, off)
}

// write logs one write; it is durable only after Sync.
func (f *memFile) write(op string, p []byte, off int64) (int, error) {
	if err := f.usable(op, true); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: op, Path: f.name, Err: errNegativeOffset}
	}
	if len(p) == 0 {
		return 0, nil
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.ino.do(fileOp{kind: opWrite, off: off, data: bytes.Clone(p)})
	return len(p), nil
}

// Truncate sets the size; the new size is durable only after Sync.
func (f *memFile) Truncate(size int64) error {
	if err := f.usable("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: syscall.EINVAL}
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.ino.do(fileOp{kind: opTruncate, size: size})
	return nil
}

// Preallocate grows the file with zeros to at least size, as fallocate
// mode 0 does on the OS; the growth is durable only after Sync.
func (f *memFile) Preallocate(size int64) error {
	if err := f.usable("preallocate", true); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "preallocate", Path: f.name, Err: syscall.EINVAL}
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if int64(len(f.ino.data)) < size {
		f.ino.do(fileOp{kind: opGrow, size: size})
	}
	return nil
}

// Size returns the current size, synced or not.
func (f *memFile) Size() (int64, error) {
	if err := f.usable("stat", false); err != nil {
		return 0, err
	}
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	return int64(len(f.ino.data)), nil
}

// Sync makes the file's current bytes durable, then counts the sync and runs
// the sync hook (see MemFS.SetSyncHook). Like fsync, it is allowed on a
// read-only handle.
func (f *memFile) Sync() error {
	if err := f.usable("sync", false); err != nil {
		return err
	}
	m := f.fs
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	m.mu.Lock()
	f.ino.sync()
	m.mu.Unlock() // before the hook, which may call CrashClone
	m.countSync()
	return nil
}

// Close closes the handle; a second Close fails, as on the OS.
func (f *memFile) Close() error {
	if f.closed.Swap(true) {
		return &fs.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	return nil
}

// usable returns the error an operation on this handle fails with, if any.
func (f *memFile) usable(op string, write bool) error {
	switch {
	case f.closed.Load():
		return &fs.PathError{Op: op, Path: f.name, Err: os.ErrClosed}
	case write && !f.writable:
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	}
	return nil
}

// memLock is a Lock held on a MemFS inode.
type memLock struct {
	fs     *MemFS
	ino    *inode
	name   string
	closed atomic.Bool
}

// Close releases the lock; a second Close fails and releases nothing.
func (l *memLock) Close() error {
	if l.closed.Swap(true) {
		return &fs.PathError{Op: "close", Path: l.name, Err: os.ErrClosed}
	}
	l.fs.mu.Lock()
	defer l.fs.mu.Unlock()
	delete(l.fs.locks, l.ino)
	return nil
}

// stat describes n under the given base name. The caller holds MemFS.mu.
func (n *inode) stat(name string) os.FileInfo {
	return &memFileInfo{name: name, size: int64(len(n.data)), mode: n.mode, modTime: n.modTime}
}

// memFileInfo is a snapshot of an inode's metadata, taken under MemFS.mu so
// that it can be read later without the lock.
type memFileInfo struct {
	name    string
	size    int64
	mode    os.FileMode
	modTime time.Time
}

func (fi *memFileInfo) Name() string       { return fi.name }
func (fi *memFileInfo) Size() int64        { return fi.size }
func (fi *memFileInfo) Mode() os.FileMode  { return fi.mode }
func (fi *memFileInfo) ModTime() time.Time { return fi.modTime }
func (fi *memFileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *memFileInfo) Sys() any           { return nil }
