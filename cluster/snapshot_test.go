package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// snapConfig makes a cluster that compacts often and keeps little: a
// member cut off for a while falls behind the retained log.
func snapConfig(cfg *Config) {
	cfg.Secret = []byte("0123456789abcdef-test-secret")
	cfg.CompactInterval = 20 * time.Millisecond
	cfg.RetainEntries = 8
	cfg.RetainTTL = 300 * time.Millisecond
	cfg.SnapshotGrace = 2 * time.Second
	cfg.SnapshotChunk = 4 << 10
	cfg.SnapshotWindow = 16 << 10
}

// checkpointAll checkpoints every running member's store, so compaction
// may drop the raft log up to there.
func (c *testCluster) checkpointAll(skip uint64) {
	for _, id := range c.ids {
		if id == skip {
			continue
		}
		if _, err := c.node(id).st.Checkpoint(context.Background()); err != nil {
			c.t.Fatalf("checkpoint member %d: %v", id, err)
		}
	}
}

// writeKeys puts n keys through member id, each with a value of size bytes.
func (c *testCluster) writeKeys(id uint64, prefix string, n, size int) {
	val := make([]byte, size)
	for i := range n {
		for j := range val {
			val[j] = byte('a' + (i+j)%26)
		}
		if _, err := c.propose(id, Request{Txn: put(fmt.Sprintf("%s%05d", prefix, i), string(val))}); err != nil {
			c.t.Fatalf("put %s%d: %v", prefix, i, err)
		}
	}
}

func followerOf(c *testCluster, lead uint64) uint64 {
	for _, id := range c.ids {
		if id != lead {
			return id
		}
	}
	return 0
}

// TestSnapshotCatchUp isolates a follower while the leader writes and
// compacts its log past the follower's match; on heal the follower gets a
// snapshot through transfer/, installs it and catches up to the same
// state at the same index, and the leader sends it one snapshot, not a
// loop of them.
func TestSnapshotCatchUp(t *testing.T) {
	c := newTestClusterConfig(t, 3, 11, snapConfig)
	lead := c.leader()
	c.writeKeys(lead, "before/", 20, 100)
	c.converged()
	f := followerOf(c, lead)
	behind := c.node(f).st.Snapshot().Index()
	c.net.Isolate(f)
	c.writeKeys(lead, "during/", 200, 200)
	c.checkpointAll(f)
	waitFor(t, "the leader to compact past the isolated follower", func() bool {
		return c.node(lead).n.ls.state().SnapIndex > behind+10
	})
	c.net.Rejoin(f)
	c.converged()
	ln, fn := c.node(lead).n, c.node(f).n
	if got := fn.SnapshotStats().Installed; got != 1 {
		t.Fatalf("follower installed %d snapshots, want 1 (stats %+v)", got, fn.SnapshotStats())
	}
	// More writes: the follower follows from the log now, no new snapshot.
	c.writeKeys(lead, "after/", 30, 100)
	c.checkpointAll(0)
	idx := c.converged()
	st := ln.SnapshotStats()
	if st.Sent != 1 {
		t.Fatalf("leader sent %d snapshots, want 1 (a loop?): %+v", st.Sent, st)
	}
	if p := fn.InstallProgress(); p.Phase != "installed" {
		t.Fatalf("install progress %+v, want installed", p)
	}
	t.Logf("caught up at index %d; leader %+v", idx, st)
}

func newSnapTCPCluster(t *testing.T) *testCluster {
	c := &testCluster{t: t, net: NewMemNetwork(1), tick: 10 * time.Millisecond, nodes: map[uint64]*testNode{},
		transport: tcpMembers(t, []uint64{1, 2, 3}), config: snapConfig}
	return c.boot(3)
}

// TestSnapshotOverTCP stops a follower while the leader writes and
// compacts past it; restarted, it gets the snapshot over the peer
// listener's snapshot stream.
func TestSnapshotOverTCP(t *testing.T) {
	c := newSnapTCPCluster(t)
	lead := c.leader()
	c.writeKeys(lead, "before/", 10, 100)
	c.converged()
	f := followerOf(c, lead)
	behind := c.node(f).st.Snapshot().Index()
	c.stop(c.node(f))
	c.writeKeys(lead, "during/", 100, 300)
	c.checkpointAll(f)
	waitFor(t, "the leader to compact past the stopped follower", func() bool {
		return c.node(lead).n.ls.state().SnapIndex > behind+10
	})
	if err := c.restart(f); err != nil {
		t.Fatal(err)
	}
	c.converged()
	if got := c.node(f).n.SnapshotStats().Installed; got != 1 {
		t.Fatalf("follower installed %d snapshots, want 1", got)
	}
}

// TestSnapshotStaleTermRefused: a stream opened in a term older than the
// member knows is refused before any byte of a snapshot moves, on TCP and
// on the in-memory network.
func TestSnapshotStaleTermRefused(t *testing.T) {
	for _, name := range []string{"tcp", "mem"} {
		t.Run(name, func(t *testing.T) {
			var c *testCluster
			if name == "tcp" {
				c = newSnapTCPCluster(t)
			} else {
				c = newTestClusterConfig(t, 3, 5, snapConfig)
			}
			lead := c.leader()
			c.writeKeys(lead, "k/", 3, 10)
			f := followerOf(c, lead)
			_, term := c.node(f).n.Leader()
			tr := c.node(lead).n.tr.(Streams)
			_, err := tr.OpenStream(context.Background(), f, term-1)
			if err == nil || !strings.Contains(err.Error(), "stale term") {
				t.Fatalf("stream of term %d to a member of term %d: %v, want a stale-term refusal", term-1, term, err)
			}
			if got := c.node(f).n.SnapshotStats().Refused; got != 1 {
				t.Fatalf("member counted %d refused streams, want 1", got)
			}
			conn, err := tr.OpenStream(context.Background(), f, term)
			if err != nil {
				t.Fatalf("stream of the current term %d: %v", term, err)
			}
			conn.Close()
		})
	}
}
