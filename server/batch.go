package server

import (
	"context"
	"sync"
	"time"

	"github.com/kvtool/kvtool/store"
)

// The write batcher: on a single node, the PUTs and DELETEs of one key that
// keep-alive connections of the fast path send at the same time are merged
// into one store transaction, one WAL record and one fsync; every request
// is answered once that transaction is durable, with its index (requests
// merged together share it). A merged transaction applies the writes in the
// order they arrived; concurrent requests have no other order, so the
// result is the one of some serial order of them, as before.
//
// Why: under serverbench's 16 clients the WAL's group commit caught the
// clients in two alternating cohorts of 8 (each fsync carried half of
// them), and each put paid for its own staging copy, WAL record and
// publication (issue 16's profile). The batcher waits for the whole cohort:
// it knows the connections that write (its members), and releases a group
// once every member has sent its next write, or once a bounded wait ran
// out (then the members that did not come are dropped until they write
// again, so a connection that stopped writing delays one group at most).
//
// Transactions (POST /v1/txn) are never merged: a failed check must
// change nothing but its own request. Neither are writes of a cluster
// member (raft batches proposals itself) nor those of connections served
// by net/http.

const (
	// batchMaxOps bounds the writes merged into one transaction.
	batchMaxOps = 4096
	// batchMaxBytes bounds the key and value bytes of one merged
	// transaction.
	batchMaxBytes = 1 << 20
	// batchMaxValue is the largest value that joins a group; a larger
	// one is committed on its own.
	batchMaxValue = 64 << 10
	// batchMinWait and batchMaxWait bound how long a group waits for its
	// members (see writeBatcher.waitLocked).
	batchMinWait = 200 * time.Microsecond
	batchMaxWait = 3 * time.Millisecond
)

// batchMember is one connection's standing with the batcher. Only the
// connection's goroutine touches it.
type batchMember struct {
	b      *writeBatcher // the batcher it wrote through; nil before its first write
	member bool          // counted in b.members
	epoch  uint64        // b's epoch it was counted in
}

// leave drops the connection from its batcher's members: it closed or was
// handed over.
func (m *batchMember) leave() {
	if m.b != nil {
		m.b.leave(m)
	}
}

type batchMemberKey struct{}

// withBatchMember marks ctx as the context of a connection whose writes
// may be merged.
func withBatchMember(ctx context.Context, m *batchMember) context.Context {
	return context.WithValue(ctx, batchMemberKey{}, m)
}

func batchMemberOf(ctx context.Context) *batchMember {
	m, _ := ctx.Value(batchMemberKey{}).(*batchMember)
	return m
}

// writeBatcher merges concurrent single-key writes (see the top of this
// file). It is safe for concurrent use.
type writeBatcher struct {
	st      *store.Store
	observe func(requests int) // called once per merged commit

	mu      sync.Mutex
	members int    // connections expected to write again (of this epoch)
	epoch   uint64 // bumped when a wait ran out: the absent members are dropped
	cur     *writeGroup
	ewma    time.Duration // running average of a merged commit's duration
}

// writeGroup is one merged transaction on its way.
type writeGroup struct {
	ops      []store.Op
	bytes    int
	timer    *time.Timer
	released chan struct{} // closed when the group takes no more writes
	epoch    uint64        // the members' epoch after the release; set before released closes
	done     chan struct{} // closed once committed (or failed)
	idx      uint64
	err      error
}

func newWriteBatcher(st *store.Store, observe func(int)) *writeBatcher {
	return &writeBatcher{st: st, observe: observe}
}

// fits reports whether op can join the group.
func (g *writeGroup) fits(op store.Op) bool {
	return len(g.ops) < batchMaxOps && g.bytes+len(op.Key)+len(op.Value) <= batchMaxBytes
}

// submit commits op, merged with the writes of other members that arrive
// with it, and returns the index of the transaction that holds it. op must
// be valid on its own (Txn.Validate).
func (b *writeBatcher) submit(m *batchMember, op store.Op) (uint64, error) {
	if len(op.Value) > batchMaxValue {
		return b.st.Commit(context.Background(), &store.Txn{Ops: []store.Op{op}})
	}
	m.b = b
	b.mu.Lock()
	if !m.member || m.epoch != b.epoch {
		m.member, m.epoch = true, b.epoch
		b.members++
	}
	g := b.cur
	if g != nil && !g.fits(op) {
		b.releaseLocked(g)
		g = nil
	}
	if g == nil {
		g = &writeGroup{released: make(chan struct{}), done: make(chan struct{})}
		b.cur = g
		g.timer = time.AfterFunc(b.waitLocked(), func() { b.timeout(g) })
	}
	leader := len(g.ops) == 0
	g.ops = append(g.ops, op)
	g.bytes += len(op.Key) + len(op.Value)
	if len(g.ops) >= b.members {
		b.releaseLocked(g)
	}
	b.mu.Unlock()
	<-g.released
	m.epoch = g.epoch
	if leader {
		b.commit(g)
	} else {
		<-g.done
	}
	return g.idx, g.err
}

// waitLocked is how long a new group waits for the members: one and a
// half merged commits (long enough for the members a commit released to
// come back while another group was being written), within bounds.
func (b *writeBatcher) waitLocked() time.Duration {
	return min(max(b.ewma+b.ewma/2, batchMinWait), batchMaxWait)
}

// releaseLocked closes g to further writes and lets its leader commit it.
func (b *writeBatcher) releaseLocked(g *writeGroup) {
	if b.cur == g {
		b.cur = nil
	}
	g.timer.Stop()
	g.epoch = b.epoch
	close(g.released)
}

// timeout releases g when its wait ran out: the members that did not write
// are dropped (a new epoch, whose members are g's).
func (b *writeBatcher) timeout(g *writeGroup) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur != g {
		return
	}
	b.epoch++
	b.members = len(g.ops)
	b.releaseLocked(g)
}

// leave drops m from the members.
func (b *writeBatcher) leave(m *batchMember) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m.member && m.epoch == b.epoch {
		b.members--
		if g := b.cur; g != nil && len(g.ops) >= b.members {
			b.releaseLocked(g)
		}
	}
	m.member = false
}

// commit commits g's writes as one transaction (not cancellable: the other
// requests of the group wait for it) and releases its waiters.
func (b *writeBatcher) commit(g *writeGroup) {
	start := time.Now()
	g.idx, g.err = b.st.Commit(context.Background(), &store.Txn{Ops: g.ops})
	d := time.Since(start)
	b.mu.Lock()
	b.ewma += (d - b.ewma) / 8
	b.mu.Unlock()
	if b.observe != nil {
		b.observe(len(g.ops))
	}
	close(g.done)
}
