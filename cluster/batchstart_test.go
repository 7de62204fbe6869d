package cluster

import (
	"bytes"
	"runtime/debug"
	"sync"
	"testing"

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
	c.converged()
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
