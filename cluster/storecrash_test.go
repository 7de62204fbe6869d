package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/datadir"
)

// TestCrashReappliesStoreTail: a member's store publishes what it applies
// before its WAL's fsync, and syncs that WAL only at intervals (here only
// when a checkpoint needs it), because its raft log holds every committed
// entry durably. A power loss then costs the store entries it applied
// and its member answered. Restarted on a crash image of only the synced
// bytes, the member finds its store behind raft's commit, applies the
// missing entries again from its raft log, and reaches the others' state
// hash at the same index; its log, compacted in between as far as its
// checkpoint allows, still holds them (compaction never passes what the
// store holds durably).
func TestCrashReappliesStoreTail(t *testing.T) {
	c := &testCluster{t: t, net: NewMemNetwork(23), tick: 10 * time.Millisecond, nodes: map[uint64]*testNode{},
		storeSync: time.Hour, // the stores' WALs sync only for a checkpoint
		config: func(cfg *Config) {
			cfg.CompactInterval = -1 // compaction is driven by the test
			cfg.RetainEntries = 1
		}}
	c.boot(3)
	lead := c.leader()
	f := followerOf(c, lead)
	c.writeKeys(lead, "a/", 30, 32)
	c.converged()
	ck := checkpointMember(t, c, f)
	c.writeKeys(f, "b/", 30, 32) // forwarded: answered once f applied each
	idx := c.converged()
	tn := c.node(f)
	res, err := tn.n.CompactLog()
	if err != nil {
		t.Fatal(err)
	}
	if res.Index != ck.Meta.Index {
		t.Fatalf("compacted the log to %d; the checkpoint is at %d (target %d, floor %d)", res.Index, ck.Meta.Index, res.Target, res.Floor)
	}
	images := c.cut([]uint64{f}, nil) // only synced bytes survive
	// The image was taken before this read, and the durable index only
	// grows: the image holds at most this much of the store's WAL (the
	// member's Close, in restartCut, syncs the rest on the old disk).
	if d := tn.st.DurableIndex(); d >= idx {
		t.Fatalf("the store's WAL is durable through %d, the applied index %d: the crash loses nothing, the test shows nothing", d, idx)
	}
	// A store WAL that ends before the raft log's commit is what a power
	// loss leaves, not damage: kvtool verify finds no fault, and kvtool
	// replay rebuilds the store's own (earlier) state.
	rep, err := datadir.Verify(images[f], "/data", datadir.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("verify the crash image: %v %v", err, rep.Problems())
	}
	rr, err := datadir.Replay(images[f], "/data", datadir.ReplayOptions{})
	if err != nil || rr.AppliedIndex < ck.Meta.Index || rr.AppliedIndex >= idx {
		t.Fatalf("the crash image replays to %+v (%v): want an index from the checkpoint's %d to before %d", rr, err, ck.Meta.Index, idx)
	}
	c.restartCut(images)
	c.writeKeys(lead, "c/", 5, 32)
	c.converged()
	snap := c.node(f).st.Snapshot()
	for i := range 30 {
		if _, ok := snap.Get(fmt.Sprintf("b/%05d", i)); !ok {
			t.Fatalf("member %d lost b/%05d, acknowledged through it before the crash", f, i)
		}
	}
}

// checkpointMember checkpoints member id's store, failing the test rather
// than waiting out a long WAL sync interval.
func checkpointMember(t *testing.T, c *testCluster, id uint64) checkpoint.Info {
	t.Helper()
	type result struct {
		info checkpoint.Info
		err  error
	}
	done := make(chan result, 1)
	go func() {
		info, err := c.node(id).st.Checkpoint(context.Background())
		done <- result{info, err}
	}()
	var r result
	waitFor(t, fmt.Sprintf("the checkpoint of member %d (not waiting out its WAL's sync interval)", id), func() bool {
		select {
		case r = <-done:
			return true
		default:
			return false
		}
	})
	if r.err != nil {
		t.Fatalf("checkpoint member %d: %v", id, r.err)
	}
	return r.info
}
