package cluster

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// testCluster is an in-process cluster: each member has its own MemFS (so
// it can crash alone) and all talk over one MemNetwork.
type testCluster struct {
	t     testing.TB
	net   *MemNetwork
	ids   []uint64
	tick  time.Duration
	mu    sync.Mutex
	nodes map[uint64]*testNode
	// transport, if set, makes each member's transport (default: an
	// endpoint of net).
	transport func(id uint64) (Transport, error)
	// wrapFS, if set, wraps each member's file system (to inject faults).
	wrapFS func(id uint64, fs vfs.FS) vfs.FS
	// config, if set, adjusts each member's configuration before it starts.
	config func(*Config)
	// snapshot counters of the members stopped so far (snapshotCounts)
	snapSent, snapInstalled int64
	// joins holds the join record of each member that joined the running
	// cluster (startJoiner), by ID.
	joins map[uint64]*JoinRecord
	// storeSync is how often each member's store syncs its WAL
	// (store.Options.WALSyncInterval; default memberWALSync).
	storeSync time.Duration
}

// memberWALSync is how often a test member's store syncs its WAL: what
// node.open gives a member served by kvtool (StoreWALSync), so a power
// loss costs a member's store the applied entries of the last interval,
// and the member applies them again from its raft log.
const memberWALSync = StoreWALSync

// testNode is one incarnation of a member. crashed is set (under the
// cluster's mu) when it crashes, before its file system is cloned: a
// client that sees it set after an answer treats the answer as unknown, as
// a real crash would have kept it from being given.
type testNode struct {
	id      uint64
	fs      *vfs.MemFS
	st      *store.Store
	n       *Node
	crashed bool
	stopped bool
}

const testClusterID = 0xc1

func newTestCluster(t testing.TB, size int, seed uint64) *testCluster {
	return newTestClusterWith(t, size, seed, nil)
}

func newTestClusterWith(t testing.TB, size int, seed uint64, transport func(id uint64) (Transport, error)) *testCluster {
	return newTestClusterFS(t, size, seed, transport, nil)
}

func newTestClusterFS(t testing.TB, size int, seed uint64, transport func(id uint64) (Transport, error), wrapFS func(uint64, vfs.FS) vfs.FS) *testCluster {
	c := &testCluster{t: t, net: NewMemNetwork(seed), tick: 10 * time.Millisecond, nodes: map[uint64]*testNode{}, transport: transport, wrapFS: wrapFS}
	return c.boot(size)
}

// newTestClusterConfig is newTestCluster with each member's configuration
// adjusted by config.
func newTestClusterConfig(t testing.TB, size int, seed uint64, config func(*Config)) *testCluster {
	c := &testCluster{t: t, net: NewMemNetwork(seed), tick: 10 * time.Millisecond, nodes: map[uint64]*testNode{}, config: config}
	return c.boot(size)
}

// boot starts size founding members.
func (c *testCluster) boot(size int) *testCluster {
	t := c.t
	for i := 1; i <= size; i++ {
		c.ids = append(c.ids, uint64(i))
	}
	for _, id := range c.ids {
		tn := &testNode{id: id, fs: vfs.NewMem()}
		if err := c.start(tn); err != nil {
			t.Fatal(err)
		}
		c.nodes[id] = tn
	}
	t.Cleanup(c.close)
	return c
}

// start opens the member's store and node on its file system.
func (c *testCluster) start(tn *testNode) error {
	var fsys vfs.FS = tn.fs
	if c.wrapFS != nil {
		fsys = c.wrapFS(tn.id, fsys)
	}
	every := c.storeSync
	if every == 0 {
		every = memberWALSync
	}
	st, err := store.Open(store.Options{FS: fsys, Dir: "/data", Create: true, Replica: true, Shards: 4, SegmentSize: 1 << 20, WALSyncInterval: every})
	if err != nil {
		return fmt.Errorf("node %d: open store: %w", tn.id, err)
	}
	var tr Transport = c.net.Endpoint(tn.id)
	if c.transport != nil {
		if tr, err = c.transport(tn.id); err != nil {
			st.Close()
			return err
		}
	}
	cfg := Config{
		ID: tn.id, ClusterID: testClusterID, Peers: c.ids, FS: fsys, Dir: "/data", Store: st,
		Transport: tr, TickInterval: c.tick, LogSegmentSize: 64 << 10, LogCacheBytes: 32 << 10,
		ProposalRetry: 30 * c.tick, Join: c.joinRecord(tn.id),
	}
	if c.config != nil {
		c.config(&cfg)
	}
	n, err := Start(cfg)
	if err != nil {
		st.Close()
		return fmt.Errorf("node %d: start: %w", tn.id, err)
	}
	tn.st, tn.n = st, n
	return nil
}

func (c *testCluster) node(id uint64) *testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// stop closes a member cleanly.
func (c *testCluster) stop(tn *testNode) {
	c.mu.Lock()
	stopped := tn.stopped
	tn.stopped = true
	c.mu.Unlock()
	if !stopped {
		c.noteSnapshots(tn.n.SnapshotStats())
		tn.n.Close()
		tn.st.Close()
	}
}

// restart starts a stopped member again on its file system.
func (c *testCluster) restart(id uint64) error {
	next := &testNode{id: id, fs: c.node(id).fs}
	if err := c.start(next); err != nil {
		return err
	}
	c.mu.Lock()
	c.nodes[id] = next
	c.mu.Unlock()
	return nil
}

// isCrashed reports whether tn crashed.
func (c *testCluster) isCrashed(tn *testNode) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return tn.crashed
}

// crash simulates a power loss of member id: it is cut off the network
// first (nothing it does from then on reaches anyone), its file system is
// cloned keeping only what was synced (with rng, also a random prefix of
// the unsynced writes, the last one torn), it is stopped, and restarted on
// the clone.
func (c *testCluster) crash(id uint64, rng *rand.Rand) {
	c.restartCut(c.cut([]uint64{id}, rng))
}

// cut is the instant of a power loss of members ids together (one
// failure domain): each is cut off the network, then, with the cluster's
// mu held throughout so no member restarts meanwhile, each file system is
// cloned keeping only what was synced (with rng, also a random prefix of
// the unsynced writes, the last one torn). The members keep running on
// their old file systems until restartCut stops them; nothing they do
// reaches anyone or survives. It returns the clones by ID.
func (c *testCluster) cut(ids []uint64, rng *rand.Rand) map[uint64]*vfs.MemFS {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		c.net.Isolate(id)
		c.nodes[id].crashed = true
	}
	opts := vfs.CrashOptions{}
	if rng != nil {
		opts = vfs.CrashOptions{Rand: rng, TearLast: true}
	}
	clones := map[uint64]*vfs.MemFS{}
	for _, id := range ids {
		clones[id] = c.nodes[id].fs.CrashClone(opts)
	}
	return clones
}

// restartCut stops the members a cut crashed and restarts each on its
// clone (all of them down at once before any restarts), then lets them
// back on the network.
func (c *testCluster) restartCut(clones map[uint64]*vfs.MemFS) {
	ids := slices.Sorted(maps.Keys(clones))
	for _, id := range ids {
		c.stop(c.node(id))
	}
	for _, id := range ids {
		next := &testNode{id: id, fs: clones[id]}
		if err := c.start(next); err != nil {
			c.t.Errorf("restart of member %d after a power loss of %v: %v", id, ids, err)
			continue
		}
		c.mu.Lock()
		c.nodes[id] = next
		c.mu.Unlock()
	}
	for _, id := range ids {
		c.net.Rejoin(id)
	}
}

func (c *testCluster) close() {
	for _, id := range c.ids {
		c.stop(c.node(id))
	}
	c.net.Close()
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !eventually(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitStopped waits until n has stopped (its Done is closed), as waitFor
// waits for any other state.
func waitStopped(t testing.TB, n *Node, what string) {
	t.Helper()
	waitFor(t, what, func() bool {
		select {
		case <-n.Done():
			return true
		default:
			return false
		}
	})
}

// eventually polls cond until it holds (true) or a generous deadline
// passes (false), for a test that must clean up before it fails.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// leader waits until a majority agrees on one leader and returns it.
func (c *testCluster) leader() uint64 {
	var lead uint64
	waitFor(c.t, "a leader", func() bool {
		votes := map[uint64]int{}
		for _, id := range c.ids {
			if l, _ := c.node(id).n.Leader(); l != 0 {
				votes[l]++
			}
		}
		for l, v := range votes {
			if v > len(c.ids)/2 {
				lead = l
				return true
			}
		}
		return false
	})
	return lead
}

// leaderAmong waits until one of ids leads and all of ids know it (the
// other members may be down).
func (c *testCluster) leaderAmong(ids []uint64) uint64 {
	var lead uint64
	waitFor(c.t, fmt.Sprintf("a leader among %v", ids), func() bool {
		lead, _ = c.node(ids[0]).n.Leader()
		for _, id := range ids {
			if l, _ := c.node(id).n.Leader(); l != lead || !slices.Contains(ids, l) {
				return false
			}
		}
		return true
	})
	return lead
}

// converged waits until every member has applied the same index and holds
// the same state, and returns the index.
func (c *testCluster) converged() uint64 {
	var idx uint64
	waitFor(c.t, "every member to apply the same entries", func() bool {
		var hash uint64
		for i, id := range c.ids {
			snap := c.node(id).st.Snapshot()
			if i == 0 {
				idx, hash = snap.Index(), snap.Hash()
			} else if snap.Index() != idx || snap.Hash() != hash {
				return false
			}
		}
		return true
	})
	return idx
}

func put(key, val string) *store.Txn {
	return &store.Txn{Ops: []store.Op{{Kind: store.OpPut, Key: key, Value: []byte(val)}}}
}

func (c *testCluster) propose(id uint64, req Request) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.node(id).n.Propose(ctx, req)
}
