package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/vfs"
)

// TestInstallFromTornImages crashes InstallFrom while it logs a received
// WAL tail that spans several of the replica's segments, with images taken
// just before every sync of the replica's directory, each keeping a random
// part of what was written but not synced yet, its last write torn. Every
// image must open, verify clean, replay (datadir.Replay) to the state the
// store opens to, and hold the old state or the received store's state at
// some index from its base to its end (checked by hash against the state
// the received store had at that index: nothing from another log, no
// entry twice, no gap); an image between the two then installs again to
// the new state, and so do the images of a crash during that second
// install. The replica's log ends before the base, at it, or is empty.
func TestInstallFromTornImages(t *testing.T) {
	for _, had := range []int{0, 10, 50} {
		t.Run(fmt.Sprint("had", had), func(t *testing.T) { testInstallFromTornImages(t, had) })
	}
}

// tornImages takes crash images of a MemFS just before each sync
// (File.Sync or SyncDir) whose path is under dir, through an ErrorFS
// injector that fails nothing: unlike a sync hook, it sees the writes the
// sync is about to make durable, which an image may keep in part.
type tornImages struct {
	mem    *vfs.MemFS
	dir    string
	armed  atomic.Bool
	mu     sync.Mutex
	rng    *rand.Rand
	images []*vfs.MemFS
}

func (ti *tornImages) MaybeError(op vfs.Op, path string) error {
	if !ti.armed.Load() || (op != vfs.OpSync && op != vfs.OpSyncDir) || !strings.HasPrefix(path, ti.dir) {
		return nil
	}
	ti.mu.Lock()
	defer ti.mu.Unlock()
	for range 2 {
		ti.images = append(ti.images, ti.mem.CrashClone(vfs.CrashOptions{Rand: ti.rng, TearLast: true}))
	}
	return nil
}

// take arms ti and returns a func that disarms it and returns the images.
func (ti *tornImages) take() func() []*vfs.MemFS {
	ti.mu.Lock()
	ti.images = nil
	ti.mu.Unlock()
	ti.armed.Store(true)
	return func() []*vfs.MemFS {
		ti.armed.Store(false)
		ti.mu.Lock()
		defer ti.mu.Unlock()
		return ti.images
	}
}

func testInstallFromTornImages(t *testing.T, had int) {
	mem := vfs.NewMem()
	// The received store: a base at 50, then 150 entries of 1 KiB (about
	// three of the replica's 64 KiB segments), some over the base's keys.
	src, err := Open(Options{FS: mem, Dir: "/staged", Create: true, Replica: true, Shards: 4, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[uint64]uint64{} // the received store's state hash at each index
	put := func(s *Store, key string, val []byte) {
		idx := s.LastIndex() + 1
		wait, _, err := s.ApplyTxnAt(context.Background(), idx, &Txn{Ops: []Op{{Kind: OpPut, Key: key, Value: val}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		if i == 50 {
			if _, err := src.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		val := []byte("s")
		if i >= 50 {
			val = []byte(strings.Repeat(fmt.Sprintf("%04d", i), 256))
		}
		put(src, fmt.Sprintf("k%d", i%70), val)
		hashes[src.Snapshot().Index()] = src.Snapshot().Hash()
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	staged, err := Open(Options{FS: mem, Dir: "/staged", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer staged.Close()
	want := staged.Snapshot()
	base := staged.CurrentManifest().Base.Index

	ti := &tornImages{mem: mem, dir: "/data", rng: rand.New(rand.NewPCG(uint64(had), 7))}
	fs := vfs.NewErrorFS(mem, ti)
	s := openSmall(t, fs)
	applyN(t, s, "old", had)
	old := s.Snapshot()
	stop := ti.take()
	if err := s.InstallFrom(context.Background(), staged); err != nil {
		t.Fatal(err)
	}
	images := stop()
	// Once InstallFrom returned, the member removes the staged copy: a
	// crash from then on must find the new state.
	if idx, hash := (&tornCheck{t: t}).open(mem.CrashClone(vfs.CrashOptions{}), "image at return"); idx != want.Index() || hash != want.Hash() {
		t.Fatalf("image at return: %d/%x, want %d/%x", idx, hash, want.Index(), want.Hash())
	}
	if got := s.Snapshot(); got.Index() != want.Index() || got.Hash() != want.Hash() {
		t.Fatalf("after install: %d/%x, want %d/%x", got.Index(), got.Hash(), want.Index(), want.Hash())
	}
	if m := s.CurrentManifest(); len(m.Deltas) != 0 || m.WALFirstIndex != base+1 {
		t.Fatalf("manifest %+v: want the tail logged from %d", m, base+1)
	}
	s.Close()
	c := &tornCheck{t: t, hashes: hashes, base: base, want: want}
	c.images(images, old, 0)
	t.Logf("%d images: %d old, %d new, %d between (%d of them crashed again while installing); %d opens cut a torn WAL tail", c.n, c.olds, c.news, c.mids, c.again, c.torn)
	if c.olds == 0 || c.news == 0 || c.mids == 0 {
		t.Fatalf("%d images old, %d new, %d between: want all three", c.olds, c.news, c.mids)
	}
}

// tornCheck checks crash images of an install of want (whose store had
// the state hashes at each index from its base at base on).
type tornCheck struct {
	t                          *testing.T
	hashes                     map[uint64]uint64
	base                       uint64
	want                       *Snapshot
	n, olds, news, mids, again int
	torn                       int // images whose WAL ended in a torn record
}

// images checks each image of an install over the state old; depth 0 is
// the first install, 1 an install run again on an image between.
func (c *tornCheck) images(images []*vfs.MemFS, old *Snapshot, depth int) {
	t := c.t
	t.Helper()
	for i, img := range images {
		c.n++
		name := fmt.Sprintf("image %d (depth %d)", i, depth)
		idx, hash := c.open(img, name)
		switch {
		case idx == old.Index() && hash == old.Hash():
			c.olds++
		case idx == c.want.Index() && hash == c.want.Hash():
			c.news++
		case idx >= c.base && idx < c.want.Index() && hash == c.hashes[idx]:
			c.mids++
			if depth == 0 && c.mids%4 == 1 {
				c.again++
				c.resume(img, name, depth)
			} else {
				c.resume(img, name, -1)
			}
		default:
			t.Fatalf("%s: state %d/%x: want the old %d/%x, the new %d/%x, or the received store's state at an index from %d (%x)",
				name, idx, hash, old.Index(), old.Hash(), c.want.Index(), c.want.Hash(), c.base, c.hashes[idx])
		}
	}
}

// open opens the store in img's /data (which may repair a torn tail),
// closes it, and checks the directory verifies clean and replays to the
// same state; it returns that state's index and hash.
func (c *tornCheck) open(img *vfs.MemFS, name string) (uint64, uint64) {
	t := c.t
	t.Helper()
	st, err := Open(Options{FS: img, Dir: "/data", Replica: true, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatalf("%s: open: %v", name, err)
	}
	got := st.Snapshot()
	if st.Log().TailCut() != nil {
		c.torn++
	}
	if err := st.Close(); err != nil {
		t.Fatalf("%s: close: %v", name, err)
	}
	rep, err := datadir.Verify(img, "/data", datadir.VerifyOptions{})
	if err != nil || rep.Faults > 0 {
		t.Fatalf("%s (state %d): verify: %v, %+v", name, got.Index(), err, rep)
	}
	rr, err := datadir.Replay(img, "/data", datadir.ReplayOptions{})
	if err != nil {
		t.Fatalf("%s (state %d): replay: %v", name, got.Index(), err)
	}
	if rr.AppliedIndex != got.Index() || rr.StateHash != got.Hash() {
		t.Fatalf("%s: replay gives %d/%x, the store opens to %d/%x", name, rr.AppliedIndex, rr.StateHash, got.Index(), got.Hash())
	}
	return got.Index(), got.Hash()
}

// resume installs the received store into img's replica again (as a
// cluster member's start does); with depth >= 0 it checks the crash
// images of that second install too.
func (c *tornCheck) resume(img *vfs.MemFS, name string, depth int) {
	t := c.t
	t.Helper()
	staged, err := Open(Options{FS: img, Dir: "/staged", ReadOnly: true})
	if err != nil {
		t.Fatalf("%s: open the received store: %v", name, err)
	}
	defer staged.Close()
	ti := &tornImages{mem: img, dir: "/data", rng: rand.New(rand.NewPCG(uint64(c.n), 9))}
	st, err := Open(Options{FS: vfs.NewErrorFS(img, ti), Dir: "/data", Replica: true, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatalf("%s: reopen: %v", name, err)
	}
	mid := st.Snapshot()
	var stop func() []*vfs.MemFS
	if depth >= 0 {
		stop = ti.take()
	}
	if err := st.InstallFrom(context.Background(), staged); err != nil {
		t.Fatalf("%s (state %d): install again: %v", name, mid.Index(), err)
	}
	var images []*vfs.MemFS
	if stop != nil {
		images = stop()
	}
	if idx, hash := c.open(img.CrashClone(vfs.CrashOptions{}), name+" at return"); idx != c.want.Index() || hash != c.want.Hash() {
		t.Fatalf("%s: image at the return of the second install: %d/%x, want %d/%x", name, idx, hash, c.want.Index(), c.want.Hash())
	}
	if got := st.Snapshot(); got.Index() != c.want.Index() || got.Hash() != c.want.Hash() {
		t.Fatalf("%s: installed again to %d/%x, want %d/%x", name, got.Index(), got.Hash(), c.want.Index(), c.want.Hash())
	}
	applyN(t, st, "after", 1)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if idx, _ := c.open(img, name+" installed again"); idx != c.want.Index()+1 {
		t.Fatalf("%s: installed again and one entry after: reopens at %d, want %d", name, idx, c.want.Index()+1)
	}
	if depth >= 0 {
		c.images(images, mid, depth+1)
	}
}
