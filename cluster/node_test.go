package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kvtool/kvtool/store"
)

func TestClusterReplicates(t *testing.T) {
	c := newTestCluster(t, 3, 1)
	lead := c.leader()
	for i, id := range c.ids {
		res, err := c.propose(id, Request{Txn: put(fmt.Sprint("k", i), fmt.Sprint("v", i))})
		if err != nil {
			t.Fatalf("propose on node %d (leader %d): %v", id, lead, err)
		}
		// Read-your-writes on the node that took the request.
		snap := c.node(id).st.Snapshot()
		if v, ok := snap.Get(fmt.Sprint("k", i)); !ok || string(v) != fmt.Sprint("v", i) || snap.Index() < res.Index {
			t.Fatalf("node %d after its write at %d: index %d, value %q", id, res.Index, snap.Index(), v)
		}
	}
	idx := c.converged()
	lead = c.leader()
	for _, id := range c.ids {
		st := c.node(id).n.Status()
		want := "follower"
		if id == lead {
			want = "leader"
		}
		if st.Role != want || st.Leader != lead || st.AppliedIndex != idx || len(st.Members) != 3 || st.Err != "" {
			t.Errorf("status of node %d: %+v", id, st)
		}
		if self := st.Members[id-1]; id == lead && (self.Match < idx || self.State != "StateReplicate") {
			t.Errorf("the leader's view of itself: %+v, want match >= %d", self, idx)
		}
	}
	for _, id := range c.ids {
		snap := c.node(id).st.Snapshot()
		for i := range c.ids {
			if v, _ := snap.Get(fmt.Sprint("k", i)); string(v) != fmt.Sprint("v", i) {
				t.Fatalf("node %d at %d: k%d = %q", id, idx, i, v)
			}
		}
	}
}

func TestClusterCheckFailsEverywhere(t *testing.T) {
	c := newTestCluster(t, 3, 2)
	c.leader()
	if _, err := c.propose(1, Request{Txn: put("acct", "5")}); err != nil {
		t.Fatal(err)
	}
	txn := &store.Txn{Ops: []store.Op{
		{Kind: store.OpAdd, Key: "acct", Delta: -10},
		{Kind: store.OpCheck, Key: "acct", Check: store.CheckMin, Min: 0},
	}}
	var ce *store.CheckError
	if _, err := c.propose(2, Request{Txn: txn}); !errors.As(err, &ce) || ce.Op != 1 {
		t.Fatalf("overdraft: %v, want a check error at op 1", err)
	}
	c.converged()
	for _, id := range c.ids {
		if v, _ := c.node(id).st.Snapshot().Get("acct"); string(v) != "5" {
			t.Fatalf("node %d: acct = %q after a failed check, want 5", id, v)
		}
	}
}

func TestClusterRequestIDAppliesOnce(t *testing.T) {
	c := newTestCluster(t, 3, 3)
	c.leader()
	add := &store.Txn{Ops: []store.Op{{Kind: store.OpAdd, Key: "n", Delta: 1}}}
	first, err := c.propose(2, Request{ID: "req-1", Txn: add})
	if err != nil || first.Duplicate {
		t.Fatalf("first: %+v, %v", first, err)
	}
	// Every node has applied the first copy before the retries: a node
	// still behind would hand its retry the first copy's own answer
	// (Duplicate false, the same index), which is right but not this test.
	c.converged()
	for _, id := range c.ids {
		again, err := c.propose(id, Request{ID: "req-1", Txn: add})
		if err != nil || !again.Duplicate || again.Index != first.Index {
			t.Fatalf("retry on node %d: %+v, %v; want a duplicate of %d", id, again, err, first.Index)
		}
	}
	c.converged()
	for _, id := range c.ids {
		if v, _ := c.node(id).st.Snapshot().Get("n"); string(v) != "1" {
			t.Fatalf("node %d: n = %q, want 1", id, v)
		}
	}
}

// TestClusterAbortedRequestStaysAborted: a request whose check failed is
// decided; a later copy of it (a re-proposal or a client's retry, same
// ID) must not apply once the state would let its check pass, or a
// client told "aborted" would find it applied (the leader-loss drill
// caught this).
func TestClusterAbortedRequestStaysAborted(t *testing.T) {
	c := newTestCluster(t, 3, 7)
	lead := c.leader()
	if _, err := c.propose(lead, Request{Txn: put("k", "y")}); err != nil {
		t.Fatal(err)
	}
	guarded := &store.Txn{Ops: []store.Op{
		{Kind: store.OpCheck, Key: "k", Check: store.CheckEquals, Value: []byte("x")},
		{Kind: store.OpPut, Key: "m", Value: []byte("1")},
	}}
	_, err := c.propose(lead, Request{ID: "guarded", Txn: guarded})
	var ce *store.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("first try: %v, want a check failure", err)
	}
	if _, err := c.propose(lead, Request{Txn: put("k", "x")}); err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids {
		res, err := c.propose(id, Request{ID: "guarded", Txn: guarded})
		if !errors.As(err, &ce) || !res.Duplicate {
			t.Fatalf("copy on node %d after the state moved: %+v, %v; want the first try's check failure", id, res, err)
		}
	}
	c.converged()
	for _, id := range c.ids {
		if v, ok := c.node(id).st.Snapshot().Get("m"); ok {
			t.Fatalf("node %d: m = %q: an aborted request applied later", id, v)
		}
	}
}

// TestClusterRetryOnLaggingNode: a retry sent to a member that has not
// applied the first try yet is answered as a duplicate with the first
// index (the member applies the first try's entry before its own copy,
// and must not take it for its own), and applies once.
func TestClusterRetryOnLaggingNode(t *testing.T) {
	c := newTestCluster(t, 3, 5)
	lead := c.leader()
	var lag uint64
	for _, id := range c.ids {
		if id != lead {
			lag = id
		}
	}
	c.net.Isolate(lag)
	add := &store.Txn{Ops: []store.Op{{Kind: store.OpAdd, Key: "n", Delta: 1}}}
	first, err := c.propose(lead, Request{ID: "req-lag", Txn: add})
	if err != nil || first.Duplicate {
		t.Fatalf("first: %+v, %v", first, err)
	}
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := c.propose(lag, Request{ID: "req-lag", Txn: add})
		done <- outcome{res, err}
	}()
	c.net.Rejoin(lag)
	o := <-done
	if o.err != nil || !o.res.Duplicate || o.res.Index != first.Index {
		t.Fatalf("retry on the lagging node %d: %+v, %v; want a duplicate of %d", lag, o.res, o.err, first.Index)
	}
	c.converged()
	for _, id := range c.ids {
		if v, _ := c.node(id).st.Snapshot().Get("n"); string(v) != "1" {
			t.Fatalf("node %d: n = %q, want 1", id, v)
		}
	}
}

// TestClusterMinorityLeader cuts the leader off with no quorum: its
// proposals time out with ErrNoQuorum, the majority elects another leader
// and commits, and once healed the old leader drops its uncommitted entry
// (a cut of its raft log) and converges.
func TestClusterMinorityLeader(t *testing.T) {
	c := newTestCluster(t, 3, 4)
	old := c.leader()
	var rest []uint64
	for _, id := range c.ids {
		if id != old {
			rest = append(rest, id)
		}
	}
	c.net.Partition([]uint64{old}, rest)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := c.node(old).n.Propose(ctx, Request{Txn: put("lost", "x")})
	cancel()
	if !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("minority proposal: %v, want ErrNoQuorum", err)
	}
	if _, err := c.propose(rest[0], Request{Txn: put("won", "y")}); err != nil {
		t.Fatal(err)
	}
	c.net.Heal()
	c.converged()
	ls := c.node(old).n.ls
	ls.mu.Lock()
	cuts := ls.cuts
	ls.mu.Unlock()
	if cuts == 0 {
		t.Errorf("the old leader's raft log was never cut")
	}
	for _, id := range c.ids {
		snap := c.node(id).st.Snapshot()
		if _, ok := snap.Get("lost"); ok {
			t.Fatalf("node %d holds the minority leader's uncommitted write", id)
		}
		if v, _ := snap.Get("won"); string(v) != "y" {
			t.Fatalf("node %d: won = %q", id, v)
		}
	}
}

func TestClusterRestart(t *testing.T) {
	c := newTestCluster(t, 3, 5)
	c.leader()
	for i := range 20 {
		if _, err := c.propose(uint64(i%3+1), Request{Txn: put("k"+strconv.Itoa(i), "v")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range c.ids { // every node restarts, cleanly and after a crash
		if id == 2 {
			c.crash(id, nil)
			continue
		}
		c.stop(c.node(id))
		if err := c.restart(id); err != nil {
			t.Fatal(err)
		}
	}
	c.leader()
	if _, err := c.propose(3, Request{Txn: put("after", "restart")}); err != nil {
		t.Fatal(err)
	}
	c.converged()
	n := 0
	c.node(1).st.Snapshot().Scan(store.ScanOptions{End: DedupPrefix}, func(string, []byte) bool { n++; return true })
	if n != 21 {
		t.Fatalf("%d keys after the restarts, want 21", n)
	}
}

func TestClusterLinearizableReadOnFollower(t *testing.T) {
	c := newTestCluster(t, 3, 6)
	lead := c.leader()
	follower := lead%3 + 1
	c.net.SetFaults(Faults{MaxDelay: 5 * time.Millisecond})
	for i := range 5 {
		v := strconv.Itoa(i)
		if _, err := c.propose(lead, Request{Txn: put("x", v)}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		snap, err := c.node(follower).n.LinearizableSnapshot(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := snap.Get("x"); string(got) != v {
			t.Fatalf("linearizable read on follower %d after write %q: %q", follower, v, got)
		}
	}
}

// TestClusterConfChangeSurvivesRestart applies a membership change (a
// learner that never shows up) and checks every member saved it with its
// index, and still has it after a crash.
func TestClusterConfChangeSurvivesRestart(t *testing.T) {
	c := newTestCluster(t, 3, 7)
	lead := c.leader()
	cc := &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: new(uint64(4))}}}
	if err := c.node(lead).n.raft.ProposeConfChange(context.Background(), cc); err != nil {
		t.Fatal(err)
	}
	hasLearner := func(id uint64) bool {
		st := c.node(id).n.ls.state()
		return slices.Equal(st.Conf.GetLearners(), []uint64{4}) && st.ConfIndex > 0
	}
	waitFor(t, "every member to apply the change", func() bool {
		return hasLearner(1) && hasLearner(2) && hasLearner(3)
	})
	c.converged()
	c.crash(2, nil)
	if !hasLearner(2) {
		t.Fatalf("member 2 lost the membership change in a crash: %+v", c.node(2).n.ls.state())
	}
	if _, err := c.propose(2, Request{Txn: put("after", "change")}); err != nil {
		t.Fatal(err)
	}
	st := c.node(2).n.Status()
	if len(st.Members) != 4 || !st.Members[3].Learner {
		t.Fatalf("members after the change: %+v", st.Members)
	}
}
