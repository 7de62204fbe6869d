package vfs

import (
	"bytes"
	"io"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
)

// CrashOptions chooses what a CrashClone keeps beyond the synced state.
type CrashOptions struct {
	// Rand, if not nil, models partial persistence of unsynced changes: the
	// crash image keeps a random prefix (possibly empty, possibly all) of
	// each file's unsynced operations (writes, truncates, preallocations,
	// in order) and of each directory's unsynced entry changes (creates,
	// renames, removes, in order), chosen independently per file and per
	// directory. If Rand is nil the image keeps exactly the synced state.
	//
	// CrashClone uses Rand only during the call and draws in a fixed order
	// (directories in sorted name order), so the same MemFS state and the
	// same Rand state give the same image: a failing seed reproduces.
	Rand *rand.Rand
	// TearLast, with Rand, lets the last kept write of each file be torn:
	// only a random prefix of its bytes, possibly none, is kept.
	TearLast bool
}

// CrashClone returns a new MemFS holding what a machine could find on disk
// after losing power at this instant: for each directory reachable from the
// root through durable entries, its durable entries; for each file reachable
// that way, its synced bytes. See CrashOptions for partial persistence.
//
// Simulated: lost unsynced writes, truncations and preallocations; lost
// unsynced creates, renames and removes (a rename across directories is two
// independent entry changes); with Rand, any in-order prefix of those, and a
// torn last write. Not simulated: unsynced writes persisting out of order
// or in pieces other than a prefix of the last one, sector-sized tearing,
// corruption of synced bytes, lying or failing fsyncs (see ErrorFS for
// failures), and file metadata other than size.
//
// Everything in the clone is durable. m is not changed and keeps working;
// the clone shares nothing with it and has no locks held, no sync hook, and
// a sync count of zero. CrashClone may be called from a sync hook.
func (m *MemFS) CrashClone(opts CrashOptions) *MemFS {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c := &crasher{
		opts:  opts,
		files: make(map[*inode]*inode),
		dirs:  map[*inode]bool{m.root: true},
	}
	return newMemFS(c.dir(m.root))
}

// SyncCount returns the number of successful File.Sync and SyncDir calls
// on m so far. Crash tests run a workload once to learn how many sync
// boundaries it has, then crash at each one with SetSyncHook.
func (m *MemFS) SyncCount() int64 { return m.syncs.Load() }

// SetSyncHook sets f to be called after each successful File.Sync or
// SyncDir, with the running sync count; nil removes the hook. The hook runs
// synchronously in the syncing goroutine, before Sync returns, so a
// CrashClone taken in it sees exactly what was durable at sync n, before
// the caller could act on it (for example, acknowledge a commit).
//
// Syncs are serialized while a hook runs, so hooks are called in count
// order with no other sync in between. The hook may call CrashClone and any
// other MemFS or File method except File.Sync and SyncDir, which would
// deadlock.
func (m *MemFS) SetSyncHook(f func(n int64)) {
	if f == nil {
		m.hook.Store(nil)
		return
	}
	m.hook.Store(&f)
}

// countSync counts a successful sync and runs the hook. The caller holds
// syncMu but not mu.
func (m *MemFS) countSync() {
	n := m.syncs.Add(1)
	if h := m.hook.Load(); h != nil {
		(*h)(n)
	}
}

// crasher builds one crash image. It holds MemFS.mu for reading throughout.
type crasher struct {
	opts  CrashOptions
	files map[*inode]*inode // original -> clone, so a file reachable by two names stays one file
	dirs  map[*inode]bool   // directories already cloned
}

// dir clones directory d with the entries a crash would leave it.
func (c *crasher) dir(d *inode) *inode {
	nd := newDirInode(d.mode)
	nd.modTime = d.modTime
	entries := c.entries(d)
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		if child := c.clone(entries[name]); child != nil {
			nd.children[name] = child
			nd.durable[name] = child
		}
	}
	return nd
}

// clone clones one directory entry's target, or returns nil to drop the
// entry. Durable entries can reach a directory twice (a directory renamed
// across parents with both parents synced at different times), even in a
// cycle; a real fsck would cut the extra link, and so does this: the first
// one in traversal order wins.
func (c *crasher) clone(n *inode) *inode {
	if n.isDir {
		if c.dirs[n] {
			return nil
		}
		c.dirs[n] = true
		return c.dir(n)
	}
	if cl, ok := c.files[n]; ok {
		return cl
	}
	cl := c.file(n)
	c.files[n] = cl
	return cl
}

// entries returns d's durable entries plus the kept prefix of its log.
func (c *crasher) entries(d *inode) map[string]*inode {
	e := maps.Clone(d.durable)
	for _, op := range d.dirLog[:c.keep(len(d.dirLog))] {
		op.apply(e)
	}
	return e
}

// file clones file f with the bytes a crash would leave it.
func (c *crasher) file(f *inode) *inode {
	b := bytes.Clone(f.synced)
	k := c.keep(len(f.pending))
	for i, op := range f.pending[:k] {
		if i == k-1 {
			op = c.maybeTear(op)
		}
		b = op.apply(b)
	}
	nf := newFileInode()
	nf.mode, nf.modTime = f.mode, f.modTime
	nf.data, nf.synced = b, bytes.Clone(b)
	return nf
}

// keep returns how many of n unsynced operations survive the crash.
func (c *crasher) keep(n int) int {
	if c.opts.Rand == nil || n == 0 {
		return 0
	}
	return c.opts.Rand.IntN(n + 1)
}

// maybeTear cuts a write to a random prefix of its bytes if tearing is on.
// Only writes tear: a truncate or preallocate is a metadata change that
// happens whole or not at all.
func (c *crasher) maybeTear(op fileOp) fileOp {
	if !c.opts.TearLast || op.kind != opWrite {
		return op
	}
	op.data = op.data[:c.opts.Rand.IntN(len(op.data)+1)]
	return op
}

// Tree returns what m holds now: every directory below the root as its
// path with a trailing "/" (mapped to ""), and every file as its path
// mapped to its contents. Crash tests compare a crash image
// (m.CrashClone(...).Tree()) with what they expect this way. A file
// removed or renamed while Tree walks may be missing from the result.
func (m *MemFS) Tree() map[string]string {
	out := map[string]string{}
	m.walkTree("/", out)
	return out
}

func (m *MemFS) walkTree(dir string, out map[string]string) {
	names, _ := m.List(dir)
	for _, n := range names {
		p := filepath.Join(dir, n)
		fi, err := m.Stat(p)
		switch {
		case err != nil:
		case fi.IsDir():
			out[p+"/"] = ""
			m.walkTree(p, out)
		default:
			if b, err := m.ReadFile(p); err == nil {
				out[p] = string(b)
			}
		}
	}
}

// ReadFile returns the contents of the file name.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	f, err := m.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}
