package cluster

import (
	"slices"
	"testing"

	"github.com/kvtool/kvtool/datadir"
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
	c.writeKeys(c.leader(), "tail/", 20, 100) // after the checkpoint: the snapshot's tail, which the joiner logs
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
	// The joiner's directory (its store took the snapshot's tail into its
	// WAL) is sound for the tools that read it without the member (kvtool
	// verify, kvtool replay): it verifies clean and replays to the state
	// the member held when it stopped.
	c.stop(j)
	final := j.st.Snapshot()
	if err := CheckInstall(j.fs, "/data"); err != nil {
		t.Fatal(err)
	}
	rep, err := datadir.Verify(j.fs, "/data", datadir.VerifyOptions{})
	if err != nil || rep.Faults > 0 {
		t.Fatalf("verify the joiner's directory: %v, %+v", err, rep)
	}
	rr, err := datadir.Replay(j.fs, "/data", datadir.ReplayOptions{})
	if err != nil {
		t.Fatalf("replay the joiner's directory: %v", err)
	}
	if rr.AppliedIndex != final.Index() || rr.StateHash != final.Hash() {
		t.Fatalf("the joiner's directory replays to %d/%x (base %s, WAL from %d), the member held %d/%x",
			rr.AppliedIndex, rr.StateHash, rr.Base, rr.WALFrom, final.Index(), final.Hash())
	}
	t.Logf("joiner's directory: base %s at %d, %d WAL records from %d, replays to %d", rr.Base, rr.BaseIndex, rr.WALRecords, rr.WALFrom, rr.AppliedIndex)
}
