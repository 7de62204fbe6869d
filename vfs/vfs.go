package vfs

import (
	"errors"
	"io"
	"os"
)

// File is an open file.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer

	// Sync makes the file's contents durable (fdatasync on the OS).
	Sync() error
	// Truncate changes the size of the file.
	Truncate(size int64) error
	// Preallocate grows the file to at least size bytes; the new bytes read
	// as zeros. On the OS the blocks are allocated up front (fallocate), which
	// makes each later fdatasync of a write into them cheaper. The new size
	// is durable only after Sync.
	Preallocate(size int64) error
	// Size returns the current size of the file.
	Size() (int64, error)
	// Name returns the path the file was opened with.
	Name() string
}

// FS is a file system.
type FS interface {
	// Create creates (or truncates) the named file for reading and writing.
	Create(name string) (File, error)
	// Open opens the named file read-only.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing file for reading and writing.
	OpenReadWrite(name string) (File, error)
	// Remove removes the named file or empty directory.
	Remove(name string) error
	// Rename atomically renames oldname to newname, replacing a file at
	// newname. A directory at newname is refused, as os.Rename does.
	Rename(oldname, newname string) error
	// MkdirAll creates dir and any missing parents. The new directories
	// are durable only after SyncDir of each parent (see
	// format.MkdirAllDurable).
	MkdirAll(dir string, perm os.FileMode) error
	// List returns the names (not paths) of the entries of dir, sorted.
	List(dir string) ([]string, error)
	// Stat describes the named file.
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the directory entries of dir durable (fsync of the
	// directory on the OS).
	SyncDir(dir string) error
	// Lock takes an exclusive advisory lock on the named file, creating it if
	// needed. It fails at once, with an error wrapping ErrLocked, if another
	// holder has it. The lock is released by closing the returned Closer.
	Lock(name string) (io.Closer, error)
}

// ErrLocked is returned (wrapped) by FS.Lock when the lock is held elsewhere.
var ErrLocked = errors.New("kvtool/vfs: file is locked by another process")

// Default is the operating system's file system.
var Default FS = OSFS{}

// IsNotExist reports whether err says a file does not exist, for every FS
// implementation in this package.
func IsNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

// WritebackStarter is implemented by files that can start writing a range
// back to disk early (the OS file: sync_file_range). It is a hint for
// pacing large writes and makes nothing durable; Sync still must follow.
type WritebackStarter interface {
	StartWriteback(off, n int64, wait bool) error
}
