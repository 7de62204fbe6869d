package vfs

import (
	"fmt"
	"io"
	"os"
	"sort"

	"golang.org/x/sys/unix"
)

// OSFS is the operating system's file system. Its errors are the os
// package's (*fs.PathError, *os.LinkError), naming the path.
type OSFS struct{}

var _ FS = OSFS{}

type osFile struct{ *os.File }

// Sync is fdatasync: it makes the bytes and the size durable but skips
// metadata no reader of ours needs, such as the modification time. It
// retries EINTR, as os.File.Sync does: an interrupted call reported no
// write-back failure, so retrying it is not retrying a failed fsync.
func (f osFile) Sync() error {
	err := ignoringEINTR(func() error { return unix.Fdatasync(int(f.Fd())) })
	if err != nil {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: err}
	}
	return nil
}

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Preallocate uses fallocate (mode 0, so the visible size grows too): on
// ext4 an fdatasync into allocated blocks costs about 35% less than one that
// extends the file (measured: 127µs vs 194µs p50). Where fallocate is not
// supported it falls back to a sparse Truncate, which has the same contents.
func (f osFile) Preallocate(size int64) error {
	cur, err := f.Size()
	if err != nil || cur >= size {
		return err
	}
	err = ignoringEINTR(func() error { return unix.Fallocate(int(f.Fd()), 0, 0, size) })
	switch {
	case err == unix.EOPNOTSUPP || err == unix.ENOSYS:
		return f.Truncate(size)
	case err != nil:
		return &os.PathError{Op: "preallocate", Path: f.Name(), Err: err}
	}
	return nil
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// Create creates or truncates the named file (mode 0644).
func (OSFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Open opens the named file read-only.
func (OSFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// OpenReadWrite opens an existing file for reading and writing.
func (OSFS) OpenReadWrite(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Remove removes the named file or empty directory.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Rename is os.Rename: it replaces a file at newname but refuses to
// replace a directory.
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// MkdirAll creates dir and any missing parents. The new directories are
// durable only after SyncDir of each parent.
func (OSFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

// Stat describes the named file, following symbolic links.
func (OSFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

// List returns the sorted names of the entries of dir.
func (OSFS) List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir fsyncs dir, making its entries durable.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Lock takes a flock on name and writes the holder's pid into it, so that a
// second process can say who holds the directory.
func (OSFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(name)
		f.Close()
		if err == unix.EWOULDBLOCK {
			return nil, fmt.Errorf("%s: %w (holder: %s)", name, ErrLocked, describeHolder(holder))
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "pid %d\n", os.Getpid())
	}
	return f, nil
}

func describeHolder(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	if s == "" {
		return "unknown process"
	}
	return s
}

// StartWriteback asks the kernel to start writing the range [off, off+n)
// of the file back to disk (sync_file_range), and, with wait, waits until
// the writeback of that range, started earlier, is done. It makes nothing
// durable (no metadata, no disk cache flush): it only spreads a large
// file's write-back over the time it is written, so that its final Sync
// is short and a small fdatasync elsewhere on the disk (the WAL's) does not
// queue behind many megabytes at once.
func (f osFile) StartWriteback(off, n int64, wait bool) error {
	flags := unix.SYNC_FILE_RANGE_WRITE
	if wait {
		flags = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
	}
	err := ignoringEINTR(func() error { return unix.SyncFileRange(int(f.Fd()), off, n, flags) })
	if err != nil {
		return &os.PathError{Op: "sync_file_range", Path: f.Name(), Err: err}
	}
	return nil
}
