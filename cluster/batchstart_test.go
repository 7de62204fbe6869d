package cluster

import (
	"bytes"
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// hookedSend is a transport that shows every Send to hook first.
type hookedSend struct {
	Transport
	hook func([]*pb.Message)
}

func (s *hookedSend) Send(msgs []*pb.Message) {
	s.hook(msgs)
	s.Transport.Send(msgs)
}

// TestBatchProposedByItsStarter: the batch of a write made on a follower
// is forwarded to the leader by the Propose call that started it (from
// within proposeBatcher.add), not by a goroutine spawned for it, whose
// wake-up sat on the path of every batched write.
func TestBatchProposedByItsStarter(t *testing.T) {
	net := NewMemNetwork(23)
	t.Cleanup(net.Close)
	var mu sync.Mutex
	var first []byte // the stack of the first forwarded proposal's Send
	hook := func(msgs []*pb.Message) {
		for _, m := range msgs {
			if m.GetType() != pb.MsgProp {
				continue
			}
			mu.Lock()
			if first == nil {
				first = debug.Stack()
			}
			mu.Unlock()
		}
	}
	c := newTestClusterWith(t, 3, 23, func(id uint64) (Transport, error) {
		return &hookedSend{Transport: net.Endpoint(id), hook: hook}, nil
	})
	lead := c.leader()
	f := followerOf(c, lead)
	// Without a leader known the first proposal is dropped and proposed
	// again later, from the batch's goroutine.
	waitFor(t, "the follower to know the leader", func() bool { l, _ := c.node(f).n.Leader(); return l == lead })
	if _, err := c.propose(f, Request{ID: "w1", Txn: put("a", "1")}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if first == nil {
		t.Fatal("the follower forwarded no proposal")
	}
	if !bytes.Contains(first, []byte("(*proposeBatcher).add")) {
		t.Fatalf("the batch was forwarded from another goroutine than the Propose call that started it:\n%s", first)
	}
}

// TestBatchRoom: with a batch on its way, what is queued leaves only once
// it is as large as that batch or holds maxEven requests (else the first write back from a batch's
// clients left alone and the others after it: batches of one and of the
// rest); with none on its way it leaves at once, and never beyond the
// depth.
func TestBatchRoom(t *testing.T) {
	for _, c := range []struct {
		inflight, inreqs, queued int
		want                     bool
	}{
		{0, 0, 1, true},
		{1, 4, 1, false},
		{1, 4, 3, false},
		{1, 4, 4, true},
		{1, 1, 1, true}, // two clients: the second's write leaves at once
		{1, 40, maxEven - 1, false},
		{1, 40, maxEven, true}, // many clients: a few queued are worth a batch
		{batchDepth, 2, 10, false},
	} {
		p := &proposeBatcher{inflight: c.inflight, inreqs: c.inreqs, queue: make([]*batchMember, c.queued)}
		if got := p.roomLocked(); got != c.want {
			t.Errorf("%d batches of %d requests on their way, %d queued: room %t, want %t", c.inflight, c.inreqs, c.queued, got, c.want)
		}
	}
}

// TestBatchHoldBounded: a write held back behind a batch that does not
// come back (its proposal lost: it waits for ProposalRetry) leaves after
// maxHold, not after that batch.
func TestBatchHoldBounded(t *testing.T) {
	c := newTestClusterConfig(t, 3, 29, func(cfg *Config) { cfg.ProposalRetry = time.Hour })
	lead := c.leader()
	c.converged()
	n := c.node(lead).n
	n.batcher.mu.Lock()
	n.batcher.inflight, n.batcher.inreqs = 1, 4 // a batch of 4 that never ends
	n.batcher.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.Propose(ctx, Request{ID: "held", Txn: put("a", "1")}); err != nil {
		t.Fatalf("a write held behind a batch that never ends: %v", err)
	}
}

// TestBatchHoldAfterFinish: a write queued while batchDepth batches are
// on their way is held when one of them ends and the one left is larger
// than the queue (roomLocked); it must still leave after maxHold, not
// wait for the batch left, which may not come back for ProposalRetry.
func TestBatchHoldAfterFinish(t *testing.T) {
	c := newTestClusterConfig(t, 3, 31, func(cfg *Config) { cfg.ProposalRetry = time.Hour })
	lead := c.leader()
	c.converged()
	n := c.node(lead).n
	n.batcher.mu.Lock()
	n.batcher.inflight, n.batcher.inreqs = batchDepth, 8 // two batches of 4 that never end by themselves
	n.batcher.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := n.Propose(ctx, Request{ID: "held", Txn: put("a", "1")})
		errc <- err
	}()
	waitFor(t, "the write to be queued behind the batches", func() bool {
		n.batcher.mu.Lock()
		defer n.batcher.mu.Unlock()
		return len(n.batcher.queue) == 1
	})
	n.batcher.finished(n, &propBatch{reqs: make([]*request, 4)}) // one of them ends; the other never does
	if err := <-errc; err != nil {
		t.Fatalf("a write held behind a batch that never ends: %v", err)
	}
}

// TestBatchReleaseQueued: a queued write whose caller gives up leaves the
// queue and its bytes with it; the bytes stayed counted, so the queue
// looked fuller than it was and left as a batch early.
func TestBatchReleaseQueued(t *testing.T) {
	p := &proposeBatcher{inflight: batchDepth} // no room: everything queues
	n := &Node{}
	n.cfg.DedupWindow = DefaultDedupWindow
	var ms []*batchMember
	for i := range 3 {
		r := &request{id: fmt.Sprint("req", i), txn: put(fmt.Sprint("k", i), "value")}
		ms = append(ms, p.add(n, r))
	}
	if p.qbytes == 0 || len(p.queue) != 3 {
		t.Fatalf("queued %d writes of %d bytes, want 3 writes", len(p.queue), p.qbytes)
	}
	for _, m := range ms {
		p.release(m)
	}
	if len(p.queue) != 0 || p.qbytes != 0 {
		t.Fatalf("after every queued caller gave up: %d writes of %d bytes still queued, want none", len(p.queue), p.qbytes)
	}
	if p.hold != nil {
		p.hold.Stop()
	}
}
