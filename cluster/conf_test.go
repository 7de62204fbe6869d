package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

func (c *testCluster) joinRecord(id uint64) *JoinRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joins[id]
}

// startJoiner starts member id on an empty file system as a member that
// joins the running cluster (after its add applied, as serve
// --join-cluster does), and returns it. It is not in c.ids.
func (c *testCluster) startJoiner(id uint64) *testNode {
	return c.startJoinerFrom(id, []uint64{1, 2, 3})
}

// startJoinerFrom is startJoiner with the voters the log it replays starts
// from: none when the cluster's log was compacted (the joiner then waits
// for a snapshot, as JoinAnswer says).
func (c *testCluster) startJoinerFrom(id uint64, voters []uint64) *testNode {
	c.t.Helper()
	c.mu.Lock()
	if c.joins == nil {
		c.joins = map[uint64]*JoinRecord{}
	}
	c.joins[id] = &JoinRecord{ClusterID: testClusterID, Self: MemberRecord{Name: fmt.Sprintf("n%d", id), ID: id}, InitialVoters: voters}
	c.mu.Unlock()
	tn := &testNode{id: id, fs: vfs.NewMem()}
	if err := c.start(tn); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[id] = tn
	c.mu.Unlock()
	c.t.Cleanup(func() { c.stop(tn) })
	return tn
}

// convergedOn waits until members ids applied the same index and hold the
// same state hash, and returns the index.
func (c *testCluster) convergedOn(ids []uint64) uint64 {
	var idx uint64
	waitFor(c.t, fmt.Sprintf("members %v to apply the same entries", ids), func() bool {
		var hash uint64
		for i, id := range ids {
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

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestClusterJoinPromoteRemove: three members under bank load; a fourth
// is added as a learner through a follower, joins on an empty directory,
// catches up by the log and is promoted by the leader on its own; all four
// reach the same state hash at the same index with every acknowledged
// transfer exactly once. Then the leader is removed: it hands leadership
// over, stops with ErrRemoved, the three left keep committing, and the
// removed member's directory refuses to start again.
func TestClusterJoinPromoteRemove(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	c := newTestCluster(t, 3, seed)
	lead := c.leader()
	init := &store.Txn{}
	for i := range bankAccounts {
		init.Ops = append(init.Ops, store.Op{Kind: store.OpPut, Key: bankAcct(i), Value: []byte(strconv.Itoa(bankInitial))})
	}
	if _, err := c.propose(lead, Request{ID: "init", Txn: init}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var writers sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	var nAcked atomic.Int64
	for w := range 3 {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, n)
				if bankSend(c, rng, id, stop, new(atomic.Pointer[powerLoss])) {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
					nAcked.Add(1)
				}
			}
		})
	}
	progress := func(what string, more int64) {
		want := nAcked.Load() + more
		waitFor(t, what, func() bool { return nAcked.Load() >= want })
	}
	progress("transfers before the join", 20)

	follower := c.ids[0]
	if follower == c.leader() {
		follower = c.ids[1]
	}
	if err := c.node(follower).n.AddLearner(ctxT(t), MemberRecord{Name: "n4", ID: 4, PeerAddr: "mem:4"}); err != nil {
		t.Fatal(err)
	}
	j := c.startJoiner(4)
	waitFor(t, "the joiner to be promoted", func() bool {
		return slices.Contains(c.node(c.leader()).n.Membership().Conf.GetVoters(), 4)
	})
	if rec := j.n.Membership().Records[4]; rec.Name != "n4" {
		t.Errorf("the joiner's record in its own state: %+v", rec)
	}
	progress("transfers after the promotion", 20)
	close(stop)
	writers.Wait()
	all := []uint64{1, 2, 3, 4}
	idx := c.convergedOn(all)
	c.ids = all
	checkOnce(t, c, acked)
	t.Logf("%d transfers acknowledged; four members at index %d", len(acked), idx)

	gone := c.leader()
	if err := c.node(c.ids[0]).n.Remove(ctxT(t), gone); err != nil {
		t.Fatal(err)
	}
	old := c.node(gone)
	select {
	case <-old.n.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the removed member did not stop")
	}
	if !errors.Is(old.n.Err(), ErrRemoved) {
		t.Fatalf("removed member's error: %v", old.n.Err())
	}
	c.stop(old)
	c.ids = slices.DeleteFunc(slices.Clone(all), func(id uint64) bool { return id == gone })
	for i, id := range c.ids {
		if _, err := c.propose(id, Request{Txn: put("after-remove", strconv.Itoa(i))}); err != nil {
			t.Fatalf("member %d after the removal of %d: %v", id, gone, err)
		}
	}
	c.convergedOn(c.ids)
	if got := c.node(c.ids[0]).n.Membership().Conf.GetVoters(); len(got) != 3 || slices.Contains(got, gone) {
		t.Fatalf("voters after the removal: %v", got)
	}
	err := c.start(&testNode{id: gone, fs: old.fs})
	if !errors.Is(err, ErrRemoved) {
		t.Fatalf("restart of the removed member: %v, want ErrRemoved", err)
	}
	t.Log(err)
}

// TestClusterConfChangeRetried: a membership change proposed while
// another is unapplied is dropped by raft (silently, as an empty entry);
// AddLearner proposes it again and returns once the applied ConfState has
// it.
func TestClusterConfChangeRetried(t *testing.T) {
	c := newTestCluster(t, 3, 11)
	lead := c.leader()
	var others []uint64
	for _, id := range c.ids {
		if id != lead {
			others = append(others, id)
		}
	}
	c.net.Partition([]uint64{lead}, others)
	ln := c.node(lead).n
	if err := ln.raft.ProposeConfChange(context.Background(), single(pb.ConfChangeAddLearnerNode, 7)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ln.AddLearner(ctxT(t), MemberRecord{Name: "n8", ID: 8}) }()
	waitFor(t, "the first proposal", func() bool { return ln.stats.confProposals.Load() >= 1 })
	c.net.Heal()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := ln.stats.confProposals.Load(); n < 2 {
		t.Errorf("the change was proposed %d times; the first must have been dropped", n)
	}
	for _, id := range c.ids {
		waitFor(t, "every member to apply the change", func() bool { return c.node(id).n.Membership().Has(8) })
	}
	if rec := c.node(others[0]).n.Membership().Records[8]; rec.Name != "n8" {
		t.Errorf("member record of n8 on member %d: %+v", others[0], rec)
	}
}

// TestClusterPromoteRefusedWhileLagging: a learner that holds none of the
// log is refused promotion (on the leader; a follower sends the caller to
// the leader), and promoted once it has caught up.
func TestClusterPromoteRefusedWhileLagging(t *testing.T) {
	c := newTestCluster(t, 3, 12)
	lead := c.leader()
	for i := range 30 {
		if _, err := c.propose(lead, Request{Txn: put("k"+strconv.Itoa(i), "v")}); err != nil {
			t.Fatal(err)
		}
	}
	ln := c.node(lead).n
	if err := ln.AddLearner(ctxT(t), MemberRecord{Name: "n5", ID: 5, StayLearner: true}); err != nil {
		t.Fatal(err)
	}
	if err := ln.Promote(ctxT(t), 5); !errors.Is(err, ErrLagging) {
		t.Fatalf("promote of a learner that holds nothing: %v, want ErrLagging", err)
	}
	follower := c.ids[0]
	if follower == lead {
		follower = c.ids[1]
	}
	if err := c.node(follower).n.Promote(ctxT(t), 5); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("promote on a follower: %v, want ErrNotLeader", err)
	}
	c.startJoiner(5)
	waitFor(t, "the learner to catch up", func() bool { return c.node(c.leader()).n.learnerReady(5) == nil })
	if slices.Contains(ln.Membership().Conf.GetVoters(), 5) {
		t.Fatal("a learner that asked to stay one was promoted on its own")
	}
	if err := c.node(c.leader()).n.Promote(ctxT(t), 5); err != nil {
		t.Fatal(err)
	}
	c.convergedOn([]uint64{1, 2, 3, 5})
}
