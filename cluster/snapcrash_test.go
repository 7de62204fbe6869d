package cluster

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// syncImages collects a crash image of fs at every sync while on.
type syncImages struct {
	mu     sync.Mutex
	on     bool
	images []*vfs.MemFS
	at     []int64
}

func (si *syncImages) hook(fs *vfs.MemFS) func(int64) {
	return func(n int64) {
		si.mu.Lock()
		defer si.mu.Unlock()
		if si.on {
			si.images = append(si.images, fs.CrashClone(vfs.CrashOptions{}))
			si.at = append(si.at, n)
		}
	}
}

func (si *syncImages) set(on bool) {
	si.mu.Lock()
	si.on = on
	si.mu.Unlock()
}

// leaveBehind sets up a follower that can only catch up by a snapshot with
// a tail: write(lead, "before") writes with the whole cluster; a follower
// of the leader is isolated; write(lead, "during") writes while it is
// away; every store is checkpointed and the leader's log compacted past
// the follower; then write(lead, "tail") writes after the checkpoint (the
// snapshot's tail, which the install logs). The follower stays isolated;
// it returns the leader, the follower and the follower's state before it
// was cut off.
func leaveBehind(c *testCluster, write func(lead uint64, phase string)) (lead, f uint64, old *store.Snapshot) {
	c.t.Helper()
	lead = c.leader()
	write(lead, "before")
	c.converged()
	f = followerOf(c, lead)
	old = c.node(f).st.Snapshot()
	c.net.Isolate(f)
	write(lead, "during")
	c.checkpointAll(f)
	waitFor(c.t, "the leader to compact past the isolated follower", func() bool {
		return c.node(lead).n.ls.state().SnapIndex > old.Index()+10
	})
	write(lead, "tail")
	return lead, f, old
}

// leaveBehindRandom is leaveBehind with the writes of the install crash
// tests: 20 keys under a/, random values under b/ while the follower is
// away, 5 keys under c/ after the checkpoint.
func leaveBehindRandom(c *testCluster) (lead, f uint64, old *store.Snapshot) {
	return leaveBehind(c, func(lead uint64, phase string) {
		switch phase {
		case "before":
			c.writeKeys(lead, "a/", 20, 100)
		case "during":
			c.writeRandom(lead, "b/", 40, 1000, 3)
		case "tail":
			c.writeKeys(lead, "c/", 5, 100)
		}
	})
}

// installImages lets the isolated follower f rejoin and returns a crash
// image of its file system at every sync until it has installed the
// snapshot it needs (syncImages).
func installImages(c *testCluster, f uint64) *syncImages {
	c.t.Helper()
	fn := c.node(f)
	si := &syncImages{}
	fn.fs.SetSyncHook(si.hook(fn.fs))
	si.set(true)
	c.net.Rejoin(f)
	waitFor(c.t, "the install", func() bool { return fn.n.InstallProgress().Phase == "installed" })
	si.set(false)
	fn.fs.SetSyncHook(nil)
	return si
}

// imageState restarts member id alone on a crash image (its peers
// unreachable) and returns its store's index and state hash, its raft
// state and whether the raft log holds every entry after pinned.
func imageState(t *testing.T, img *vfs.MemFS, id uint64, peers []uint64, pinned uint64) (idx, hash uint64, st raftState, err error) {
	s, err := store.Open(store.Options{FS: img, Dir: "/data", Replica: true, Shards: 4, SegmentSize: 1 << 20})
	if err != nil {
		return 0, 0, st, fmt.Errorf("open store: %w", err)
	}
	defer s.Close()
	n, err := Start(Config{ID: id, ClusterID: testClusterID, Peers: peers, FS: img, Dir: "/data", Store: s,
		Transport: NewMemNetwork(1).Endpoint(id), TickInterval: time.Hour, CompactInterval: -1,
		LogSegmentSize: 64 << 10, LogCacheBytes: 32 << 10})
	if err != nil {
		return 0, 0, st, fmt.Errorf("start node: %w", err)
	}
	defer n.Close()
	snap := s.Snapshot()
	st = n.ls.state()
	if pinned > 0 {
		last, _ := n.ls.LastIndex()
		if _, err := n.ls.Entries(pinned+1, last+1, 1<<40); err != nil {
			return 0, 0, st, fmt.Errorf("the log a lease pinned (after %d) is gone: %w", pinned, err)
		}
	}
	return snap.Index(), snap.Hash(), st, nil
}

// TestCompactionCrashImages: the leader compacts while a lease (a stopped
// follower's) pins part of its log; a crash image at every sync of the
// compaction restarts to the same state, with the pinned log intact and
// the snapshot never past the lease.
func TestCompactionCrashImages(t *testing.T) {
	c := newTestClusterConfig(t, 3, 17, func(cfg *Config) {
		snapConfig(cfg)
		cfg.CompactInterval = -1 // compaction is driven by the test
		cfg.RetainTTL = time.Hour
	})
	lead := c.leader()
	c.writeKeys(lead, "a/", 300, 300) // several 64 KiB raft segments
	c.converged()
	f := followerOf(c, lead)
	c.net.Isolate(f)
	pinned := c.node(f).st.Snapshot().Index()
	c.writeKeys(lead, "b/", 300, 300)
	c.checkpointAll(f)
	ln := c.node(lead)
	// The lease on f's match holds while f is silent (RetainTTL is long).
	ln.n.ret.observe(ln.n.raft.Status(), lead, time.Now())
	ln.n.ret.mu.Lock()
	floor := ln.n.ret.peers[f].index
	ln.n.ret.mu.Unlock()
	if floor != pinned {
		t.Fatalf("lease of member %d pins %d, want its match %d", f, floor, pinned)
	}
	for _, m := range ln.n.Status().Members {
		if m.ID == f && (m.PinnedIndex != pinned || m.PinnedBytes <= 0 || m.LeaseState != LeaseActive || m.LeaseExpires.IsZero()) {
			t.Fatalf("status of member %d: %+v, want its lease: log after %d pinned, bytes, expiry", f, m, pinned)
		}
	}
	// Compact under the sync hook.
	si := &syncImages{}
	ln.fs.SetSyncHook(si.hook(ln.fs))
	want, wantHash := ln.st.Snapshot().Index(), ln.st.Snapshot().Hash()
	before := ln.n.ls.state().SnapIndex
	si.set(true)
	res, err := ln.n.CompactLog()
	si.set(false)
	ln.fs.SetSyncHook(nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Index != pinned || len(res.Dropped) == 0 {
		t.Fatalf("compaction %+v: want the log compacted to the lease at %d, dropping segments (was at %d)", res, pinned, before)
	}
	if len(si.images) < 2 {
		t.Fatalf("%d crash images, want one per sync of the compaction", len(si.images))
	}
	for i, img := range si.images {
		if rep, err := datadir.Verify(img, "/data", datadir.VerifyOptions{Raft: VerifyRaft}); err != nil || !rep.OK() {
			t.Fatalf("image %d (sync %d): verify of a healthy crash image: %v %v", i, si.at[i], err, rep.Problems())
		}
		idx, hash, st, err := imageState(t, img, lead, c.ids, pinned)
		if err != nil {
			t.Fatalf("image %d (sync %d): %v", i, si.at[i], err)
		}
		if idx != want || hash != wantHash {
			t.Fatalf("image %d (sync %d): state %d/%x, want %d/%x", i, si.at[i], idx, hash, want, wantHash)
		}
		if st.SnapIndex != before && st.SnapIndex != pinned {
			t.Fatalf("image %d (sync %d): raft snapshot %d, want %d or %d", i, si.at[i], st.SnapIndex, before, pinned)
		}
	}
	t.Logf("%d crash images of the compaction to %d (dropped %d segments), each consistent", len(si.images), pinned, len(res.Dropped))
	// And f, back, catches up from the log the lease kept: no snapshot.
	c.net.Rejoin(f)
	c.converged()
	if n := ln.n.SnapshotStats().Sent; n != 0 {
		t.Fatalf("leader sent %d snapshots to a member whose log it kept", n)
	}
}

// readOnlyState is what a read-only tool sees in a member's data
// directory on fs: CheckInstall's error, else the store's index and state
// hash, which a verification of the directory must find sound.
func readOnlyState(fs *vfs.MemFS) (idx, hash uint64, err error) {
	if err := CheckInstall(fs, "/data"); err != nil {
		return 0, 0, err
	}
	rep, err := datadir.Verify(fs, "/data", datadir.VerifyOptions{Raft: VerifyRaft})
	if err != nil {
		return 0, 0, err
	}
	if rep.Faults > 0 {
		return 0, 0, fmt.Errorf("verify finds %d faults: %v", rep.Faults, rep.Problems())
	}
	s, err := store.Open(store.Options{FS: fs, Dir: "/data", ReadOnly: true})
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	return s.Snapshot().Index(), s.Snapshot().Hash(), nil
}

// TestInstallCrashImages takes a crash image of an isolated follower at
// every sync while it receives, cuts over and installs a snapshot; each
// image restarts alone to a consistent node: the old state or the
// snapshot's (an install interrupted after its commit point, the
// snapshot's tail logged in part or not at all, resumes from the staged
// copy), never a mix, and the raft state never ahead of it.
func TestInstallCrashImages(t *testing.T) {
	c := newTestClusterConfig(t, 3, 19, snapConfig)
	lead, f, old := leaveBehindRandom(c)
	fn := c.node(f)
	oldIdx, oldHash := old.Index(), old.Hash()
	newIdx, newHash := c.node(lead).st.Snapshot().Index(), c.node(lead).st.Snapshot().Hash()
	si := installImages(c, f)
	if fn.st.Snapshot().Index() != newIdx || fn.st.Snapshot().Hash() != newHash {
		t.Fatalf("installed state %d/%x, want %d/%x", fn.st.Snapshot().Index(), fn.st.Snapshot().Hash(), newIdx, newHash)
	}
	if m := fn.st.CurrentManifest(); m.Base == nil || m.Base.Index >= newIdx || len(m.Deltas) != 0 || m.WALFirstIndex != m.Base.Index+1 {
		t.Fatalf("manifest after the install %+v: want the received base before %d and its tail in the WAL", m, newIdx)
	}
	olds, news, pending := 0, 0, 0
	for i, img := range si.images {
		// kvtool verify (VerifyMember) finds every image sound, an
		// install pending or not (datadir.Verify alone finds a store
		// being replaced at a WAL that does not reach its new base).
		if rep, err := VerifyMember(img, "/data", datadir.VerifyOptions{}); err != nil || !rep.OK() {
			t.Fatalf("image %d (sync %d): verify: %v %v", i, si.at[i], err, rep.Problems())
		}
		roIdx, roHash, roErr := readOnlyState(img)
		if roErr != nil && !errors.Is(roErr, ErrInstallPending) {
			t.Fatalf("image %d (sync %d): a read-only look: %v", i, si.at[i], roErr)
		}
		idx, hash, st, err := imageState(t, img, f, c.ids, 0)
		if err != nil {
			t.Fatalf("image %d of %d (sync %d): %v", i, len(si.images), si.at[i], err)
		}
		// A read-only tool sees what the member restarts to, or is told
		// that an install is pending; a start finishes it, after which
		// kvtool verify and kvtool replay find what the member holds.
		if aIdx, aHash, err := readOnlyState(img); err != nil || aIdx != idx || aHash != hash {
			t.Fatalf("image %d (sync %d): after a start, a read-only look shows %d/%x (%v), the member restarted to %d/%x", i, si.at[i], aIdx, aHash, err, idx, hash)
		}
		if rr, err := datadir.Replay(img, "/data", datadir.ReplayOptions{}); err != nil || rr.AppliedIndex != idx || rr.StateHash != hash {
			t.Fatalf("image %d (sync %d): after a start, the directory replays to %+v (%v), the member restarted to %d/%x", i, si.at[i], rr, err, idx, hash)
		}
		if roErr != nil {
			pending++
		} else if roIdx != idx || roHash != hash {
			t.Fatalf("image %d (sync %d): a read-only look shows %d/%x, the member restarts to %d/%x, and nothing says an install is pending",
				i, si.at[i], roIdx, roHash, idx, hash)
		}
		switch {
		case idx == oldIdx && hash == oldHash && st.SnapIndex <= oldIdx:
			olds++
		case idx == newIdx && hash == newHash && st.SnapIndex == newIdx:
			news++
		default:
			t.Fatalf("image %d (sync %d): state %d/%x with raft snapshot %d; want the old %d/%x or the new %d/%x",
				i, si.at[i], idx, hash, st.SnapIndex, oldIdx, oldHash, newIdx, newHash)
		}
	}
	if olds == 0 || news == 0 || pending == 0 {
		t.Fatalf("%d images with the old state, %d with the new, %d with an install pending: want each", olds, news, pending)
	}
	t.Logf("%d crash images: %d restart to the old state, %d to the installed snapshot (%d of them pending an install a start finishes)", len(si.images), olds, news, pending)
	// A crash at some of those syncs in a live cluster (the member cut
	// off at the sync, so nothing it did after is seen): restarted on its
	// image, it catches up with the others. Mid-transfer, the last sync
	// before the install's commit point, and the first ones after it.
	for _, k := range []int{olds / 2, olds - 1, olds, olds + 1} {
		t.Run(fmt.Sprintf("crash at sync %d", k), func(t *testing.T) { installCrashAt(t, k) })
	}
}

// installCrashAt runs TestInstallCrashImages's scenario and crashes the
// member at the k-th sync after it comes back: it is cut off inside the
// sync, its file system cloned with what is durable, and it restarts on
// the clone and must catch up.
func installCrashAt(t *testing.T, k int) {
	c := newTestClusterConfig(t, 3, 19, snapConfig)
	lead, f, _ := leaveBehindRandom(c)
	fn := c.node(f)
	var mu sync.Mutex
	var img *vfs.MemFS
	n := 0
	fn.fs.SetSyncHook(func(int64) {
		mu.Lock()
		defer mu.Unlock()
		if n++; n == k {
			c.net.Isolate(f)
			img = fn.fs.CrashClone(vfs.CrashOptions{})
		}
	})
	c.net.Rejoin(f)
	waitFor(t, "the crash point", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return img != nil || fn.n.InstallProgress().Phase == "installed"
	})
	mu.Lock()
	clone := img
	mu.Unlock()
	if clone == nil {
		t.Skipf("the install took fewer than %d syncs this time", k)
	}
	fn.fs.SetSyncHook(nil)
	c.restartOn(f, clone)
	c.writeKeys(lead, "after/", 3, 10)
	idx := c.converged()
	t.Logf("crashed at sync %d (the cut-off incarnation went on to %q); the restarted one caught up at index %d (install %q, resumed %d sessions)",
		k, fn.n.InstallProgress().Phase, idx, c.node(f).n.InstallProgress().Phase, c.node(f).n.InstallProgress().Resumed)
}

// restartOn replaces member id by one started on file system fs (a crash
// image), as a machine restored from it.
func (c *testCluster) restartOn(id uint64, fs *vfs.MemFS) {
	c.t.Helper()
	c.net.Isolate(id)
	c.stop(c.node(id))
	next := &testNode{id: id, fs: fs}
	if err := c.start(next); err != nil {
		c.t.Fatalf("restart member %d on an image: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id] = next
	c.mu.Unlock()
	c.net.Rejoin(id)
}

// TestVerifyPendingInstallDamage: a member that crashed after an
// install's commit point (STATE records the snapshot, the store still
// stands before it) can only start from the staged copy in
// DATA/raft/incoming. Damage to that copy (a byte of any of its files, or
// the copy gone) makes the start refuse, so verify must report it: a
// member that will not start and a verify that finds nothing wrong leave
// its operator with no clue. The undamaged image verifies sound.
func TestVerifyPendingInstallDamage(t *testing.T) {
	c := newTestClusterConfig(t, 3, 19, snapConfig)
	lead, f, _ := leaveBehindRandom(c)
	newIdx, newHash := c.node(lead).st.Snapshot().Index(), c.node(lead).st.Snapshot().Hash()
	si := installImages(c, f)
	// The first image past the commit point whose store has not taken
	// the snapshot yet.
	var img *vfs.MemFS
	for _, im := range si.images {
		if !errors.Is(CheckInstall(im, "/data"), ErrInstallPending) {
			continue
		}
		s, err := store.Open(store.Options{FS: im, Dir: "/data", ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		behind := s.Snapshot().Index() < newIdx
		s.Close()
		if behind {
			img = im
			break
		}
	}
	if img == nil {
		t.Fatalf("no crash image among %d with the install pending and the store behind it", len(si.images))
	}
	verify := func(fs vfs.FS) *datadir.Report {
		t.Helper()
		rep, err := datadir.Verify(fs, "/data", datadir.VerifyOptions{Raft: VerifyRaft})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := verify(img.CrashClone(vfs.CrashOptions{})); !rep.OK() {
		t.Fatalf("the undamaged image with an install pending: %v", rep.Problems())
	}
	incoming := filepath.Join("/data", RaftDir, IncomingDir)
	files := filesUnder(img, incoming)
	if len(files) == 0 {
		t.Fatalf("no staged files under %s", incoming)
	}
	type damage struct {
		what string
		do   func(fs *vfs.MemFS)
	}
	var damages []damage
	for _, p := range files {
		damages = append(damages, damage{"a byte in the middle of " + p, func(fs *vfs.MemFS) {
			fi, err := fs.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			flipAt(t, fs, p, fi.Size()/2, 0x5a)
		}})
	}
	damages = append(damages, damage{"the staged copy gone", func(fs *vfs.MemFS) {
		if err := removeTree(fs, incoming); err != nil {
			t.Fatal(err)
		}
	}}, damage{"a byte in the store's MANIFEST", func(fs *vfs.MemFS) {
		flipAt(t, fs, filepath.Join("/data", format.ManifestName), 30, 0x5a)
	}})
	for _, d := range damages {
		fs := img.CrashClone(vfs.CrashOptions{})
		d.do(fs)
		rep := verify(fs)
		if mrep, err := VerifyMember(fs, "/data", datadir.VerifyOptions{}); err != nil || mrep.OK() != rep.OK() {
			t.Errorf("%s: kvtool verify (VerifyMember) says sound %v (%v), the raft checks %v", d.what, mrep.OK(), err, rep.OK())
		}
		idx, hash, _, serr := imageState(t, fs, f, c.ids, 0)
		switch {
		case serr != nil && rep.OK():
			t.Errorf("%s: verify finds nothing wrong, but the member does not start: %v", d.what, serr)
		case serr == nil && (idx != newIdx || hash != newHash):
			t.Errorf("%s: the member started at %d/%x, want the snapshot's %d/%x", d.what, idx, hash, newIdx, newHash)
		}
	}
}
