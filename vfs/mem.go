package vfs

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// MemFS is an in-memory FS for tests that knows what a power loss would keep.
//
// Every file (inode) holds its current bytes, its bytes as of its last
// File.Sync, and the operations in between; every directory holds its
// current entries, its entries as of its last SyncDir, and the operations in
// between. Reads and lookups see the current state; CrashClone builds a new
// MemFS from the durable state, so code that forgets a sync loses data in its
// crash tests exactly where it would on a real machine.
//
// Paths are cleaned with filepath.Clean and resolved from one root; a
// relative name is resolved as if the working directory were the root.
// Errors are *fs.PathError (*os.LinkError for Rename) wrapping the
// syscall.Errno the operating system would return, so errors.Is with
// os.ErrNotExist or os.ErrExist, and IsNotExist, work as with OSFS.
//
// Deliberate simplifications:
//   - Permissions are recorded but not enforced.
//   - Open of a directory fails with EISDIR, and SyncDir of a regular file
//     fails with ENOTDIR (the OS allows both), so a mistyped path is caught.
//   - Lock is exclusive within one MemFS; a CrashClone starts with no locks,
//     as a rebooted machine does.
//
// MemFS is safe for concurrent use.
type MemFS struct {
	// mu guards the whole tree: every inode, its contents and logs, and
	// locks. One lock for everything makes a CrashClone a consistent
	// instant with no lock ordering to get wrong.
	mu    sync.RWMutex
	root  *inode
	locks map[*inode]bool // inodes currently held by Lock

	// syncMu serializes File.Sync and SyncDir, and is held while the hook
	// runs but mu is not. So hooks run in count order, a hook may call
	// CrashClone (which takes mu), and while the hook for sync n runs no
	// other sync can change what is durable.
	syncMu sync.Mutex
	syncs  atomic.Int64                  // successful syncs so far
	hook   atomic.Pointer[func(n int64)] // called after each successful sync
}

var _ FS = (*MemFS)(nil)

// NewMem returns an empty MemFS holding only its root directory.
func NewMem() *MemFS {
	return newMemFS(newDirInode(0o755))
}

func newMemFS(root *inode) *MemFS {
	return &MemFS{root: root, locks: make(map[*inode]bool)}
}

// Create creates or truncates the named file. Its parent directory must
// exist. A new name is durable only after SyncDir of the parent; the
// truncation of an existing file only after File.Sync.
func (m *MemFS) Create(name string) (File, error) {
	return m.openFile(name, openFlags{create: true, trunc: true, write: true})
}

// Open opens the named file read-only.
func (m *MemFS) Open(name string) (File, error) {
	return m.openFile(name, openFlags{})
}

// OpenReadWrite opens an existing file for reading and writing, at offset 0.
func (m *MemFS) OpenReadWrite(name string) (File, error) {
	return m.openFile(name, openFlags{write: true})
}

type openFlags struct{ create, trunc, write bool }

func (m *MemFS) openFile(name string, fl openFlags) (*memFile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, err := m.openInode(name, fl)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &memFile{fs: m, ino: ino, name: name, writable: fl.write}, nil
}

// openInode finds or creates the file to open. The caller holds mu.
func (m *MemFS) openInode(name string, fl openFlags) (*inode, error) {
	ino, err := m.resolve(name)
	switch {
	case err == syscall.ENOENT && fl.create:
		return m.createFile(name)
	case err != nil:
		return nil, err
	case ino.isDir:
		return nil, syscall.EISDIR
	case fl.trunc:
		ino.do(fileOp{kind: opTruncate, size: 0})
	}
	return ino, nil
}

// createFile links a new empty file at name. The caller holds mu.
func (m *MemFS) createFile(name string) (*inode, error) {
	dir, base, err := m.parentOf(name)
	if err != nil {
		return nil, err
	}
	ino := newFileInode()
	dir.link(base, ino)
	return ino, nil
}

// Remove removes the named file or empty directory. The removal is durable
// only after SyncDir of the parent; until then a crash brings the file back.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.remove(name); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	return nil
}

func (m *MemFS) remove(name string) error {
	dir, base, err := m.parentOf(name)
	if err != nil {
		return err
	}
	ino, ok := dir.children[base]
	switch {
	case !ok:
		return syscall.ENOENT
	case ino.isDir && len(ino.children) > 0:
		return syscall.ENOTEMPTY
	}
	dir.unlink(base)
	return nil
}

// Rename renames oldname to newname, replacing a file at newname; like
// os.Rename it refuses to replace a directory. Within one directory the rename is one atomic directory
// operation, durable after SyncDir of that directory. Across directories it
// is two: the new entry is durable after SyncDir of the new parent, the
// removal of the old one after SyncDir of the old parent; a crash between
// the two syncs can show both names or neither, which is why callers must
// sync both.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.rename(oldname, newname); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return nil
}

func (m *MemFS) rename(oldname, newname string) error {
	odir, obase, err := m.parentOf(oldname)
	if err != nil {
		return err
	}
	ino, ok := odir.children[obase]
	if !ok {
		return syscall.ENOENT
	}
	ndir, nbase, err := m.parentOf(newname)
	if err != nil {
		return err
	}
	if err := m.checkRenameTarget(ino, ndir.children[nbase], newname); err != nil {
		return err
	}
	if ndir.children[nbase] == ino {
		return nil // POSIX: renaming a file onto itself (or a hard link of it) does nothing
	}
	if odir == ndir {
		odir.rename(obase, nbase)
		return nil
	}
	ndir.link(nbase, ino)
	odir.unlink(obase)
	return nil
}

// checkRenameTarget applies os.Rename's rules on what a rename may
// replace, and refuses to move a directory into itself. The caller holds mu.
func (m *MemFS) checkRenameTarget(src, dst *inode, newname string) error {
	switch {
	case dst == nil:
	case dst.isDir:
		// os.Rename refuses every directory target, even an empty one or
		// the source directory itself, before asking the kernel.
		return syscall.EEXIST
	case src.isDir:
		return syscall.ENOTDIR
	}
	if src.isDir && m.onPath(src, newname) {
		return syscall.EINVAL
	}
	return nil
}

// onPath reports whether ino is one of the directories on the way from the
// root to name's parent, that is, whether name lies inside ino.
func (m *MemFS) onPath(ino *inode, name string) bool {
	parts := split(name)
	n := m.root
	for _, p := range parts[:len(parts)-1] {
		if n == ino {
			return true
		}
		n = n.children[p]
	}
	return n == ino
}

// MkdirAll creates dir and any missing parents. Like every other directory
// entry, each directory it creates is durable only after SyncDir of its
// parent: until then a crash loses it, and everything below it.
func (m *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.root
	for _, p := range split(dir) {
		child, ok := n.children[p]
		if !ok {
			child = newDirInode(perm)
			n.link(p, child)
		}
		if !child.isDir {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		n = child
	}
	return nil
}

// List returns the sorted names of the entries of dir.
func (m *MemFS) List(dir string) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	d, err := m.resolve(dir)
	if err == nil && !d.isDir {
		err = syscall.ENOTDIR
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	names := make([]string, 0, len(d.children))
	for name := range d.children {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// Stat describes the named file or directory.
func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ino, err := m.resolve(name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return ino.stat(filepath.Base(filepath.Clean("/" + name))), nil
}

// SyncDir makes the current entries of dir durable: creates, renames and
// removes in dir done so far survive a later CrashClone.
func (m *MemFS) SyncDir(dir string) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	if err := m.syncDir(dir); err != nil {
		return &fs.PathError{Op: "sync", Path: dir, Err: err}
	}
	m.countSync()
	return nil
}

func (m *MemFS) syncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.resolve(dir)
	if err != nil {
		return err
	}
	if !d.isDir {
		return syscall.ENOTDIR
	}
	d.syncDir()
	return nil
}

// Lock takes an exclusive lock on the named file, creating it if needed
// (an unsynced create, like any other). A second Lock of the same file on
// this MemFS fails with an error wrapping ErrLocked until the first Closer
// is closed.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, err := m.openInode(name, openFlags{create: true, write: true})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if m.locks[ino] {
		return nil, fmt.Errorf("%s: %w (holder: this process)", name, ErrLocked)
	}
	m.locks[ino] = true
	return &memLock{fs: m, ino: ino, name: name}, nil
}

// resolve returns the inode name refers to. The caller holds mu.
func (m *MemFS) resolve(name string) (*inode, error) {
	return m.walk(split(name))
}

func (m *MemFS) walk(parts []string) (*inode, error) {
	n := m.root
	for _, p := range parts {
		if !n.isDir {
			return nil, syscall.ENOTDIR
		}
		child, ok := n.children[p]
		if !ok {
			return nil, syscall.ENOENT
		}
		n = child
	}
	return n, nil
}

// parentOf returns the directory holding name's last element, and that
// element. The root has no parent: it cannot be created, removed or renamed.
// The caller holds mu.
func (m *MemFS) parentOf(name string) (dir *inode, base string, err error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", syscall.EBUSY
	}
	dir, err = m.walk(parts[:len(parts)-1])
	if err == nil && !dir.isDir {
		err = syscall.ENOTDIR
	}
	return dir, parts[len(parts)-1], err
}

// split cleans name and returns its elements below the root; the root
// itself has none. Rooting the name before cleaning makes "a", "/a" and
// "../a" the same file, and keeps ".." from climbing above the root.
func split(name string) []string {
	p := filepath.Clean("/" + name)
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}
