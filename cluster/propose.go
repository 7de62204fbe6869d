package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/kvtool/kvtool/internal/testfault"
	"github.com/kvtool/kvtool/store"
)

// Request is one write: a transaction, proposed as one raft entry.
type Request struct {
	// ID is the client's request ID (HTTP X-Kvtool-Request-Id), at most
	// MaxRequestID bytes: a request retried with the same ID applies at
	// most once. Empty: the node makes one up. Either way the node
	// re-proposes the request while it waits, in case a proposal was lost
	// with a leader, and the ID keeps the copies from applying twice.
	ID  string
	Txn *store.Txn
}

// Result says where a request applied.
type Result struct {
	Index     uint64 // the log index that applied it
	Duplicate bool   // its ID had already applied, at Index; this retry changed nothing
}

// Propose replicates req and returns once a quorum has durably logged its
// entry and this node has applied and published it, so a read on this
// node right after sees it (followers forward the proposal to the leader
// through raft). The transaction's checks are decided at apply time
// against committed state, alike on every node: a failed check returns a
// *store.CheckError and changed nothing anywhere. If ctx ends first the
// error wraps ErrNoQuorum (the write may still apply; retry with the same
// ID).
func (n *Node) Propose(ctx context.Context, req Request) (Result, error) {
	if err := req.Txn.Validate(); err != nil {
		return Result{}, err
	}
	if len(req.ID) > MaxRequestID {
		return Result{}, fmt.Errorf("kvtool/cluster: request ID of %d bytes, the limit is %d", len(req.ID), MaxRequestID)
	}
	r := &request{id: req.ID, dedup: true, txn: req.Txn, attempt: newAttempt()}
	if r.id == "" {
		r.id = newRequestID()
	}
	ch := n.waiters.add(r.id)
	defer n.waiters.remove(r.id, ch)
	n.stats.proposals.Add(1)
	var res applyResult
	var err error
	if batchable(r) && !testfault.ClusterAckBeforeQuorum.Load() {
		res, err = n.proposeBatched(ctx, r, ch)
	} else {
		res, err = n.awaitApply(ctx, r, encodeRequest(r), ch)
	}
	if err == nil {
		err = n.st.WaitApplied(ctx, res.entry)
		if err != nil && ctx.Err() != nil {
			err = n.deadlineErr(ctx, "write")
		}
	}
	switch {
	case err != nil:
		n.stats.proposalsFailed.Add(1)
		return Result{}, err
	case res.checkErr != nil:
		n.stats.proposalsAborted.Add(1)
	default:
		n.stats.proposalsOK.Add(1)
	}
	// Another call's entry with the same ID may apply first (a client's
	// retry on a member that had not applied the first try yet): this
	// call then changed nothing, like a duplicate.
	dup := res.dup || res.attempt != r.attempt
	return Result{Index: res.index, Duplicate: dup}, res.checkErr
}

// newAttempt returns a random nonzero attempt number.
func newAttempt() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if a := binary.LittleEndian.Uint64(b[:]); a != 0 {
			return a
		}
	}
}

// awaitApply proposes data and waits for this node to apply it (see
// proposeUntil: a deduplicated request is proposed again while it waits).
func (n *Node) awaitApply(ctx context.Context, r *request, data []byte, ch chan applyResult) (applyResult, error) {
	if testfault.ClusterAckBeforeQuorum.Load() {
		return applyResult{}, n.ackBeforeQuorum(ctx, data)
	}
	res, err := proposeUntil(n, ctx, ch, data, r.dedup, n.raft.proposeAsync)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = n.deadlineErr(ctx, "write")
	}
	return res, err
}

// proposeUntil proposes data with propose and returns what done yields
// first (a batch's done is closed once every member has its answer): it
// proposes again every ProposalRetry and whenever the leader
// changes if again is set (the request has an ID: a copy applies at most
// once; a proposal may be lost with a leader), and again soon if raft
// dropped it (no leader known: the proposal reached no log, so trying
// again is always safe). propose does not wait for raft: its channel
// gets raft's error only if raft refused the proposal. It returns an
// error once ctx ends (ctx.Err()), the node stops, or raft refuses the
// proposal otherwise. Single requests (awaitApply) and batches (launch)
// share it.
func proposeUntil[T any](n *Node, ctx context.Context, done <-chan T, data []byte, again bool, propose func([]byte) <-chan error) (T, error) {
	retry := time.NewTimer(0)
	defer retry.Stop()
	return proposeLoop(n, ctx, done, data, again, propose, retry, proposal{})
}

// proposeAgain is proposeUntil for data already proposed once, just now:
// refused is that proposal's answer and leaderCh the leader change
// channel taken before it. A batch is proposed by the goroutine that
// starts it (batch.go), and only its retries are this call's.
func proposeAgain[T any](n *Node, ctx context.Context, done <-chan T, data []byte, refused <-chan error, leaderCh <-chan struct{}, propose func([]byte) <-chan error) (T, error) {
	retry := time.NewTimer(n.cfg.ProposalRetry)
	defer retry.Stop()
	return proposeLoop(n, ctx, done, data, true, propose, retry, proposal{proposed: true, refused: refused, leaderCh: leaderCh})
}

// proposal is the state of proposeLoop: whether data was proposed, and
// the answer and leader change channel of the last proposal.
type proposal struct {
	proposed, before bool // proposed now, and before the last proposal
	refused          <-chan error
	leaderCh         <-chan struct{}
}

// proposeLoop is proposeUntil's loop, from state st; retry fires when
// data is due to be proposed (again).
func proposeLoop[T any](n *Node, ctx context.Context, done <-chan T, data []byte, again bool, propose func([]byte) <-chan error, retry *time.Timer, st proposal) (T, error) {
	var zero T
	for {
		select {
		case v := <-done:
			return v, nil
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-n.done():
			select { // applied just before the stop: the answer wins
			case v := <-done:
				return v, nil
			default:
				return zero, n.stoppedErr()
			}
		case err := <-st.refused:
			st.refused = nil
			if !errors.Is(err, raft.ErrProposalDropped) {
				return zero, n.stoppedErr()
			}
			if st.before {
				n.stats.proposalRetries.Add(-1)
			}
			st.proposed = st.before // it reached no log
			retry.Reset(n.cfg.TickInterval)
			continue
		case <-retry.C:
		case <-st.leaderCh:
		}
		if st.proposed && !again {
			st.leaderCh = nil // without an ID a second proposal could apply twice
			continue
		}
		st.leaderCh = n.leaderChanged()
		if st.proposed {
			n.stats.proposalRetries.Add(1)
		}
		st.before, st.proposed = st.proposed, true
		st.refused = propose(data)
		retry.Reset(n.cfg.ProposalRetry)
	}
}

// ackBeforeQuorum is the planted bug testfault.ClusterAckBeforeQuorum: it
// returns as soon as raft took the proposal, before any quorum logged it.
func (n *Node) ackBeforeQuorum(ctx context.Context, data []byte) error {
	for {
		err := n.raft.Propose(ctx, data)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, raft.ErrProposalDropped):
			if ctx.Err() != nil {
				return n.deadlineErr(ctx, "write")
			}
			return n.stoppedErr()
		}
		select {
		case <-time.After(n.cfg.TickInterval):
		case <-ctx.Done():
			return n.deadlineErr(ctx, "write")
		}
	}
}

func (n *Node) deadlineErr(ctx context.Context, what string) error {
	lead, term := n.Leader()
	if lead == 0 {
		return fmt.Errorf("%w: %s on node %x: no leader known in term %d: %w", ErrNoQuorum, what, n.cfg.ID, term, ctx.Err())
	}
	return fmt.Errorf("%w: %s on node %x: leader %x (term %d) did not commit it in time: %w", ErrNoQuorum, what, n.cfg.ID, lead, term, ctx.Err())
}

func (n *Node) stoppedErr() error {
	if err := n.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrStopped, err)
	}
	return fmt.Errorf("%w: node %x is closed", ErrStopped, n.cfg.ID)
}

// newRequestID returns a random ID for a request that has none.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// waitTable holds the proposals waiting on this node, by request ID. A
// request retried while its first call still waits has two waiters; both
// get the result.
type waitTable struct {
	mu sync.Mutex
	m  map[string][]chan applyResult
}

func (w *waitTable) add(id string) chan applyResult {
	ch := make(chan applyResult, 1)
	w.mu.Lock()
	w.m[id] = append(w.m[id], ch)
	w.mu.Unlock()
	return ch
}

func (w *waitTable) remove(id string, ch chan applyResult) {
	w.mu.Lock()
	defer w.mu.Unlock()
	chans := w.m[id]
	for i, c := range chans {
		if c == ch {
			chans = append(chans[:i:i], chans[i+1:]...)
			break
		}
	}
	if len(chans) == 0 {
		delete(w.m, id)
	} else {
		w.m[id] = chans
	}
}

// deliver hands res to every waiter of id (each at most once).
func (w *waitTable) deliver(id string, res applyResult) {
	w.mu.Lock()
	chans := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	for _, ch := range chans {
		ch <- res
	}
}
