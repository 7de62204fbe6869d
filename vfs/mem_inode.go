package vfs

import (
	"os"
	"slices"
	"time"
)

// inode is a MemFS file or directory. Every field is guarded by MemFS.mu.
//
// Both kinds keep their durable state plus the log of what changed since it
// was last made durable, rather than two full copies, because the log is what
// a crash image with partial persistence replays a prefix of, and because
// making a file durable then costs the bytes written since its last Sync, not
// the size of the file.
type inode struct {
	isDir   bool
	mode    os.FileMode
	modTime time.Time

	// A file's bytes. Invariant: applying pending to synced, in order,
	// yields data.
	data    []byte   // current contents, what reads see
	synced  []byte   // contents as of the last File.Sync
	pending []fileOp // changes since the last File.Sync, oldest first

	// A directory's entries. Invariant: applying dirLog to durable, in
	// order, yields children.
	children map[string]*inode // current entries, what lookups see
	durable  map[string]*inode // entries as of the last SyncDir
	dirLog   []dirOp           // changes since the last SyncDir, oldest first
}

func newFileInode() *inode {
	return &inode{mode: 0o644, modTime: time.Now()}
}

func newDirInode(perm os.FileMode) *inode {
	return &inode{
		isDir:    true,
		mode:     os.ModeDir | perm.Perm(),
		modTime:  time.Now(),
		children: make(map[string]*inode),
		durable:  make(map[string]*inode),
	}
}

// do applies op to the current bytes and logs it until the next sync.
func (n *inode) do(op fileOp) {
	n.data = op.apply(n.data)
	n.pending = append(n.pending, op)
	n.modTime = time.Now()
}

// sync makes the current bytes durable by replaying the log onto synced.
func (n *inode) sync() {
	for _, op := range n.pending {
		n.synced = op.apply(n.synced)
	}
	n.pending = nil
}

// link points name at child and logs it until the next SyncDir.
func (n *inode) link(name string, child *inode) {
	n.logDir(dirOp{kind: opLink, name: name, ino: child})
}

// unlink removes name and logs it until the next SyncDir.
func (n *inode) unlink(name string) {
	n.logDir(dirOp{kind: opUnlink, name: name})
}

// rename moves the entry from to to within this directory as one logged
// operation: a same-directory rename is atomic on a journaling file system,
// so no crash image may show both names or neither.
func (n *inode) rename(from, to string) {
	n.logDir(dirOp{kind: opRename, name: from, to: to, ino: n.children[from]})
}

func (n *inode) logDir(op dirOp) {
	op.apply(n.children)
	n.dirLog = append(n.dirLog, op)
	n.modTime = time.Now()
}

// syncDir makes the current entries durable.
func (n *inode) syncDir() {
	for _, op := range n.dirLog {
		op.apply(n.durable)
	}
	n.dirLog = nil
}

type fileOpKind uint8

const (
	opWrite    fileOpKind = iota // write data at off
	opTruncate                   // set the size to size
	opGrow                       // grow the size to at least size (Preallocate)
)

// fileOp is one change to a file's bytes. data is owned by the op: callers'
// buffers are copied before an op is built.
type fileOp struct {
	kind fileOpKind
	off  int64
	size int64
	data []byte
}

// apply returns b changed by op; it may reuse b's backing array.
func (op fileOp) apply(b []byte) []byte {
	switch op.kind {
	case opWrite:
		return writeAt(b, op.data, op.off)
	case opTruncate:
		return resize(b, op.size)
	default: // opGrow
		if int64(len(b)) >= op.size {
			return b
		}
		return resize(b, op.size)
	}
}

// writeAt copies p into b at off, growing b with zeros as needed. An empty p
// changes nothing, as an empty pwrite does not extend a file.
func writeAt(b, p []byte, off int64) []byte {
	if len(p) == 0 {
		return b
	}
	if end := off + int64(len(p)); end > int64(len(b)) {
		b = resize(b, end)
	}
	copy(b[off:], p)
	return b
}

// resize sets the length of b to size. Grown bytes are zeroed explicitly
// because b's spare capacity may still hold bytes cut by an earlier shrink.
func resize(b []byte, size int64) []byte {
	old := int64(len(b))
	if size <= old {
		return b[:size]
	}
	b = slices.Grow(b, int(size-old))[:size]
	clear(b[old:])
	return b
}

type dirOpKind uint8

const (
	opLink   dirOpKind = iota // name -> ino (create, or replace)
	opUnlink                  // remove name
	opRename                  // to -> ino, remove name
)

// dirOp is one change to a directory's entries. A rename carries its inode
// rather than looking name up when replayed, so replaying a prefix of the
// log onto the durable state always moves the file that was renamed.
type dirOp struct {
	kind dirOpKind
	name string
	to   string
	ino  *inode
}

func (op dirOp) apply(entries map[string]*inode) {
	switch op.kind {
	case opLink:
		entries[op.name] = op.ino
	case opUnlink:
		delete(entries, op.name)
	case opRename:
		delete(entries, op.name)
		entries[op.to] = op.ino
	}
}
