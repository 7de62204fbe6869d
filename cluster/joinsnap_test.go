package cluster

import (
	"slices"
	"testing"
)

// TestClusterJoinBySnapshot: the cluster's log is compacted before a
// fourth member joins, so the joiner (starting with no membership, as a
// JoinAnswer from a compacted member tells it) can only catch up by a
// snapshot streamed through transfer/: it installs one, learns every
// peer from the snapshot's membership records, is promoted, and all four
// reach the same state hash at the same index. More writes after that
// reach it by the log, without a second snapshot.
func TestClusterJoinBySnapshot(t *testing.T) {
	c := newTestClusterConfig(t, 3, 21, snapConfig)
	lead := c.leader()
	c.writeKeys(lead, "before/", 200, 200)
	c.checkpointAll(0)
	waitFor(t, "the leader to compact its log", func() bool {
		return c.node(c.leader()).n.ls.state().SnapIndex > 50
	})
	if err := c.node(c.leader()).n.AddLearner(ctxT(t), MemberRecord{Name: "n4", ID: 4, PeerAddr: "mem:4"}); err != nil {
		t.Fatal(err)
	}
	j := c.startJoinerFrom(4, nil)
	waitFor(t, "the joiner to install a snapshot", func() bool { return j.n.SnapshotStats().Installed >= 1 })
	waitFor(t, "the joiner to be promoted", func() bool {
		return slices.Contains(c.node(c.leader()).n.Membership().Conf.GetVoters(), 4)
	})
	// The joiner knows what the snapshot's membership says, records included.
	want := c.node(c.leader()).n.Membership()
	waitFor(t, "the joiner's membership to match the leader's", func() bool {
		got := j.n.Membership()
		return len(got.Records) == len(want.Records) && slices.Equal(got.Conf.GetVoters(), want.Conf.GetVoters())
	})
	if got := j.n.Membership().Records[4]; got.Name != "n4" {
		t.Fatalf("joiner's own record %+v, want n4 (from the snapshot)", got)
	}
	c.writeKeys(c.leader(), "after/", 30, 100)
	all := []uint64{1, 2, 3, 4}
	idx := c.convergedOn(all)
	if got := j.n.SnapshotStats().Installed; got != 1 {
		t.Fatalf("joiner installed %d snapshots, want 1: %+v", got, j.n.SnapshotStats())
	}
	if v, ok := j.st.Snapshot().Get("before/00007"); !ok || len(v) != 200 {
		t.Fatalf("joiner's state lacks a key written before the compaction")
	}
	t.Logf("four members at index %d; joiner %+v", idx, j.n.InstallProgress())
}
