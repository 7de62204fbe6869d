package cluster

import (
	"context"
	"crypto/rand"
	"sync"
	"time"

	"github.com/kvtool/kvtool/store"
)

// LinearizableSnapshot returns a snapshot of this node's store that
// includes every write acknowledged anywhere before the call: raft's
// ReadIndex confirms with a quorum that the leader is still the leader and
// names its commit index, and the node waits until it has applied that
// far. Each attempt uses a fresh request context (a reused one can match a
// stale answer); an attempt that gets no answer within ReadRetry (the
// message was lost, or there was no leader) is replaced by a new one until
// ctx ends, then the error wraps ErrNoQuorum.
//
// A local read (Store().Snapshot()) never waits on the network but may be
// stale: it is not linearizable.
func (n *Node) LinearizableSnapshot(ctx context.Context) (*store.Snapshot, error) {
	n.stats.readIndexes.Add(1)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			n.stats.readRetries.Add(1)
		}
		idx, ok, err := n.readIndexOnce(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if err := n.st.WaitApplied(ctx, idx); err != nil {
			if ctx.Err() != nil {
				return nil, n.deadlineErr(ctx, "linearizable read")
			}
			return nil, err
		}
		return n.st.Snapshot(), nil
	}
}

// readIndexOnce makes one ReadIndex attempt. It returns ok false when the
// attempt timed out and another should be made.
func (n *Node) readIndexOnce(ctx context.Context) (uint64, bool, error) {
	var b [16]byte
	rand.Read(b[:])
	rctx := string(b[:])
	ch := n.reads.add(rctx)
	defer n.reads.remove(rctx)
	n.raft.ReadIndex([]byte(rctx))
	t := time.NewTimer(n.cfg.ReadRetry)
	defer t.Stop()
	select {
	case idx := <-ch:
		return idx, true, nil
	case <-t.C:
		return 0, false, nil
	case <-ctx.Done():
		return 0, false, n.deadlineErr(ctx, "linearizable read")
	case <-n.done():
		return 0, false, n.stoppedErr()
	}
}

// readTable holds the ReadIndex attempts waiting for raft's answer, by
// request context.
type readTable struct {
	mu sync.Mutex
	m  map[string]chan uint64
}

func (r *readTable) add(rctx string) chan uint64 {
	ch := make(chan uint64, 1)
	r.mu.Lock()
	r.m[rctx] = ch
	r.mu.Unlock()
	return ch
}

func (r *readTable) remove(rctx string) {
	r.mu.Lock()
	delete(r.m, rctx)
	r.mu.Unlock()
}

// deliver answers the attempt rctx (if it still waits) with read index idx.
func (r *readTable) deliver(rctx string, idx uint64) {
	r.mu.Lock()
	ch := r.m[rctx]
	delete(r.m, rctx)
	r.mu.Unlock()
	if ch != nil {
		ch <- idx
	}
}
