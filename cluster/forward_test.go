package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// TestClusterForwardedProposalWithoutLeader: a member that knows no leader
// (restarted, its peers silent) gets a proposal a peer forwarded to it
// when it led. Receive must not wait for a leader: the peer's link
// delivers messages one by one, and the heartbeats that would give this
// member a leader are behind the proposal.
func TestClusterForwardedProposalWithoutLeader(t *testing.T) {
	c := newTestCluster(t, 3, 1)
	c.leader()
	c.stop(c.node(2))
	c.stop(c.node(3))
	n := c.node(1).n
	waitFor(t, "member 1 to know no leader", func() bool { l, _ := n.Leader(); return l == 0 })
	done := make(chan error, 1)
	go func() {
		done <- n.Receive(context.Background(), &pb.Message{Type: pb.MsgProp.Enum(), From: new(uint64(2)), To: new(uint64(1)),
			Entries: []*pb.Entry{{Data: []byte("forwarded")}}})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Receive of a forwarded proposal still waits for a leader after 30s: the peer's link is blocked")
	}
}

// TestProposalRefusedWithoutLeader: a member that knows no leader refuses
// a proposal at once, and the proposer hears it (ErrProposalDropped: its
// retry logic proposes again soon), instead of waiting for a leader; an
// asynchronous proposal hears it on its channel.
func TestProposalRefusedWithoutLeader(t *testing.T) {
	c := newTestCluster(t, 3, 2)
	c.leader()
	c.stop(c.node(2))
	c.stop(c.node(3))
	n := c.node(1).n
	waitFor(t, "member 1 to know no leader", func() bool { l, _ := n.Leader(); return l == 0 })
	if err := n.raft.Propose(ctxT(t), []byte("x")); !errors.Is(err, raft.ErrProposalDropped) {
		t.Fatalf("Propose without a leader: %v, want ErrProposalDropped", err)
	}
	select {
	case err := <-n.raft.proposeAsync([]byte("y")):
		if !errors.Is(err, raft.ErrProposalDropped) {
			t.Fatalf("proposeAsync without a leader: %v, want ErrProposalDropped", err)
		}
	case <-ctxT(t).Done():
		t.Fatal("proposeAsync without a leader: no answer")
	}
}
