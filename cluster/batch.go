package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kvtool/kvtool/store"
)

// Proposal batching: concurrent plain writes (puts and deletes, no checks)
// proposed on one node travel in one raft entry, a batch, so raft, the raft
// log's records and fsyncs, the messages to the followers and the store's
// apply are paid once per batch instead of once per request (issue 11
// "Speed": at 128 clients the cluster's CPU per put was the limit). A
// follower batches what it forwards to the leader the same way.
//
// A node keeps at most batchDepth batches of its own proposed and not yet
// applied; a write that arrives while that many are on their way waits
// for one of them to apply and then leaves with every write that waited
// with it; while fewer are on their way, the queue leaves once it holds
// as many requests as they do on average (roomLocked). A lone write (one
// client) is proposed at once, alone.
//
// Each request in a batch keeps its own ID, attempt and answer: a request
// whose ID already applied is a duplicate and changes nothing (as for a
// single request); the others apply together, in the batch's order, at
// the batch's index. Plain writes cannot fail a check, so one request's
// outcome never depends on another's. Writes with checks or adds are
// proposed alone (request.go's format), as before.
//
// The batch entry, little-endian; part of the replicated format:
//
//	+--------------+-----------------+------------------------------------+
//	| version u8   | count uvarint   | count x (len uvarint | request v1) |
//	+--------------+-----------------+------------------------------------+
//
// Each request is request.go's version 1 encoding, deduplicated (flag bit
// 0 set), holding only puts and deletes; 1 <= count <= maxBatchRequests.
// Anything else makes the whole entry malformed, which every node applies
// alike as a no-op. The version says where the batch's request IDs are
// recorded: version 3 (what a node proposes) in one record per batch
// (batchdedup.go); version 2 (proposed by earlier builds, still applied
// as they did) in a second slot table, numbered by a replicated counter
// of batched requests rather than by log index (a batch holds many
// requests at one index):
//
//	DedupPrefix + "seq"          -> the next batch slot number (decimal)
//	DedupPrefix + "seq/" + %08x  -> the ID recorded in that batch slot
//
// Either way an ID applied in a batch is remembered for at least
// DedupWindow batched requests (and an ID applied alone for at least
// DedupWindow entries, as before); a request is a duplicate when any of
// the tables holds its ID.
const (
	batchVersionSlots = 2 // IDs in the batch slot table
	batchVersion      = 3 // IDs in batch records; what a node proposes
	// maxEntryVersion is the newest entry format this build applies. The
	// first byte of a normal entry is its version (request.go's 1, the
	// batches' 2 and 3); a member that meets a newer one stops
	// (ErrNewerEntry) rather than apply it as a no-op and diverge from
	// the members that understand it. A build that adds a format raises it.
	maxEntryVersion = batchVersion
)

const (
	// maxBatchRequests bounds the requests of one batch entry.
	maxBatchRequests = 256
	// maxBatchBytes bounds the encoded requests of one batch (well
	// under raft's MaxSizePerMsg, so a batch travels in one message).
	maxBatchBytes = 256 << 10
	// maxBatchedOps and maxBatchedBytes bound a request that may join a
	// batch; a larger one is proposed alone.
	maxBatchedOps   = 64
	maxBatchedBytes = 64 << 10
	// batchDepth is how many batches a node keeps on their way at once.
	batchDepth = 2
	// maxHold bounds how long roomLocked holds a queue back while a
	// batch is on its way (one whose proposal was lost waits for
	// ProposalRetry: the writes behind it must not).
	maxHold = 5 * time.Millisecond
	// maxEven bounds the queue roomLocked waits for: with many clients
	// a second batch of a few writes is no longer a costly entry, and
	// waiting for it to grow as large as a batch of dozens left raft's
	// pipeline half idle (128 clients: fewer puts a second).
	maxEven = 4
)

func seqKey() string { return DedupPrefix + "seq" }

func seqSlotKey(slot uint64) string { return fmt.Sprintf("%sseq/%08x", DedupPrefix, slot) }

// batchable reports whether r may join a batch: plain writes only, small.
func batchable(r *request) bool {
	if !r.dedup || len(r.txn.Ops) > maxBatchedOps {
		return false
	}
	size := 0
	for _, op := range r.txn.Ops {
		if op.Kind != store.OpPut && op.Kind != store.OpDelete {
			return false
		}
		size += len(op.Key) + len(op.Value)
	}
	return size <= maxBatchedBytes
}

// encodeBatch encodes requests (each batchable) as one batch entry.
func encodeBatch(reqs []*request) []byte { return encodeBatchVersion(batchVersion, reqs) }

// encodeBatchVersion encodes requests as a batch entry of version v.
func encodeBatchVersion(v byte, reqs []*request) []byte {
	n := 1 + uvarintLen(uint64(len(reqs)))
	for _, r := range reqs {
		n += bytesSize(requestSize(r))
	}
	b := make([]byte, 0, n) // one allocation: each request is encoded in place
	b = append(b, v)
	b = binary.AppendUvarint(b, uint64(len(reqs)))
	for _, r := range reqs {
		b = binary.AppendUvarint(b, uint64(requestSize(r)))
		b = appendRequest(b, r)
	}
	return b
}

// decodeBatch decodes a batch entry strictly (see the top of this file).
// The result does not alias b.
func decodeBatch(b []byte) ([]*request, error) {
	d := &reqDecoder{b: b}
	if v := d.byte1(); v != batchVersion && v != batchVersionSlots {
		return nil, d.fail("batch entry of version %d", v)
	}
	n := d.uvarint()
	if d.err == nil && (n == 0 || n > maxBatchRequests) {
		return nil, d.fail("batch of %d requests, want 1 to %d", n, maxBatchRequests)
	}
	reqs := make([]*request, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		size := d.uvarint()
		if d.err == nil && size > uint64(len(d.b)) {
			return nil, d.fail("batch request %d of %d bytes, %d left", i, size, len(d.b))
		}
		sub := d.take(int(size))
		if d.err != nil {
			break
		}
		r, err := decodeRequest(sub)
		if err != nil {
			return nil, fmt.Errorf("batch request %d: %w", i, err)
		}
		if !r.dedup {
			return nil, d.fail("batch request %d has no client ID flag", i)
		}
		for j, op := range r.txn.Ops {
			if op.Kind != store.OpPut && op.Kind != store.OpDelete {
				return nil, d.fail("batch request %d, operation %d: kind %d (a batch holds puts and deletes only)", i, j, op.Kind)
			}
		}
		reqs = append(reqs, r)
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the last request", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return reqs, nil
}

// applyBatch applies a batch entry of version v at idx: the requests
// whose IDs are new apply together (one store transaction with the
// records of their IDs); the others are duplicates, answered with the
// index that decided them. A batch of version 3 goes through
// prepareBatch and applyRun, as in a run of entries (apply.go).
func (n *Node) applyBatch(idx uint64, v byte, reqs []*request) error {
	if v == batchVersion {
		return n.applyRun([]preparedEntry{n.prepareBatch(idx, reqs)})
	}
	fresh, dups := n.splitBatch(reqs)
	var checkErr error
	if len(fresh) == 0 {
		if _, _, err := n.st.ApplyTxnAt(context.Background(), idx, nil); err != nil {
			return err
		}
	} else {
		var ops []store.Op
		for _, r := range fresh {
			ops = append(ops, r.txn.Ops...)
		}
		applied := strconv.AppendUint(nil, idx, 10)
		n.batchIDs.singles = true // the records below are dedupKey's
		record, onAbort := n.batchDedupOps(fresh, applied, append([]byte(abortedMark), applied...))
		txn := &store.Txn{Ops: append(ops, record...)}
		var err error
		if _, checkErr, err = n.st.ApplyTxnAtOr(context.Background(), idx, txn, onAbort); err != nil {
			return err
		}
	}
	for _, r := range fresh {
		n.waiters.deliver(r.id, applyResult{entry: idx, index: idx, checkErr: checkErr, attempt: r.attempt})
	}
	for _, d := range dups {
		n.waiters.deliver(d.id, duplicateResult(idx, d.id, d.v))
	}
	return nil
}

// batchDup is a request of a batch whose ID an earlier entry decided, with
// the dedup value recorded for it.
type batchDup struct {
	id string
	v  []byte
}

// splitBatch splits the requests of a batch into those whose IDs are new
// (the first copy of each) and the duplicates of earlier entries.
func (n *Node) splitBatch(reqs []*request) (fresh []*request, dups []batchDup) {
	seen := make(map[string]bool, len(reqs))
	for _, r := range reqs {
		if seen[r.id] {
			continue // a second copy in this batch: the first one answers its waiters
		}
		seen[r.id] = true
		if v, ok := n.decided(r.id); ok {
			dups = append(dups, batchDup{r.id, v})
			continue
		}
		fresh = append(fresh, r)
	}
	return fresh, dups
}

// prepareBatch prepares a batch entry of version 3 at idx for applyRun:
// the store transaction of its new requests with the record of their IDs,
// and its duplicates. It records the IDs in the batch index at once (the
// outcome of a batch of puts and deletes depends only on its validity),
// so that the next entry of a run finds them decided.
func (n *Node) prepareBatch(idx uint64, reqs []*request) preparedEntry {
	pe := preparedEntry{idx: idx}
	pe.fresh, pe.dups = n.splitBatch(reqs)
	if len(pe.fresh) == 0 {
		return pe
	}
	record, onAbort := n.batchIDs.ops(idx, pe.fresh, n.cfg.DedupWindow)
	size := len(record)
	for _, r := range pe.fresh {
		size += len(r.txn.Ops)
	}
	ops := make([]store.Op, 0, size)
	for _, r := range pe.fresh {
		ops = append(ops, r.txn.Ops...)
	}
	txn := &store.Txn{Ops: append(ops, record...)}
	pe.aborted = txn.Validate() != nil
	pe.txn = store.EntryTxn{Txn: txn, OnAbort: onAbort, Valid: !pe.aborted}
	n.batchIDs.applied(idx, pe.fresh, pe.aborted, n.cfg.DedupWindow)
	return pe
}

// decided returns the dedup value of request ID id if an entry already
// decided it (the decimal index, after abortedMark if its check failed):
// from the store's dedup records (requests applied alone, batches of
// version 2) or the batch records.
func (n *Node) decided(id string) ([]byte, bool) {
	if !n.batchIDs.singles {
		return n.batchIDs.decided(id)
	}
	if v, ok := n.st.GetNewest(dedupKey(id)); ok {
		return v, true
	}
	return n.batchIDs.decided(id)
}

// batchDedupOps returns the writes that record the IDs of reqs (new, and
// distinct) in the next batch slots, evicting the IDs those slots held,
// and advance the slot counter: record gives each ID the value applied,
// onAbort (the same writes, for a batch the store refused) the value
// aborted.
func (n *Node) batchDedupOps(reqs []*request, applied, aborted []byte) (record, onAbort []store.Op) {
	seq := uint64(0)
	if s, ok := n.st.GetNewest(seqKey()); ok {
		seq, _ = strconv.ParseUint(string(s), 10, 64) // unparsable (written under the reserved prefix by hand): start again at 0
	}
	record = make([]store.Op, 0, 3*len(reqs)+1)
	onAbort = make([]store.Op, 0, 3*len(reqs)+1)
	taken := map[string]string{} // slots written by this batch (a window smaller than the batch)
	for _, r := range reqs {
		slot := seqSlotKey(seq % n.cfg.DedupWindow)
		seq++
		old, ok := taken[slot]
		if !ok {
			var b []byte
			b, ok = n.st.GetNewest(slot)
			old = string(b)
		}
		if ok {
			evict := store.Op{Kind: store.OpDelete, Key: dedupKey(old)}
			record, onAbort = append(record, evict), append(onAbort, evict)
		}
		taken[slot] = r.id
		put := store.Op{Kind: store.OpPut, Key: slot, Value: []byte(r.id)}
		key := dedupKey(r.id)
		record = append(record, put, store.Op{Kind: store.OpPut, Key: key, Value: applied})
		onAbort = append(onAbort, put, store.Op{Kind: store.OpPut, Key: key, Value: aborted})
	}
	next := store.Op{Kind: store.OpPut, Key: seqKey(), Value: strconv.AppendUint(nil, seq, 10)}
	return append(record, next), append(onAbort, next)
}

// duplicateResult is the answer to a retry of request id, already decided
// at the index held in its dedup record v (with a check failure if the
// original failed its check: the retry gets no second chance to apply).
func duplicateResult(idx uint64, id string, v []byte) applyResult {
	res := applyResult{entry: idx, dup: true}
	num, aborted := strings.CutPrefix(string(v), abortedMark)
	orig, perr := strconv.ParseUint(num, 10, 64)
	if perr != nil {
		orig, aborted = idx, false // a value a client wrote under the reserved prefix; the retry still applies nothing
	}
	res.index = orig
	if aborted {
		res.checkErr = &store.CheckError{Key: "", Reason: fmt.Sprintf("request %q was already decided at index %d, where its check failed", id, orig)}
	}
	return res
}

// proposeBatcher gathers a node's batchable requests into batches.
//
// A batch is proposed by the goroutine that starts it (a caller of
// Propose, or the goroutine of the batch whose end made room for it), not
// by a goroutine spawned for it, which had to be scheduled first: on two
// busy cores that wake-up sat on the path of every batched write (issue
// 11, the p99 target). The batch's goroutine only proposes it again, if
// it must.
type proposeBatcher struct {
	mu       sync.Mutex
	inflight int            // batches proposed and not yet done
	inreqs   int            // the requests of those batches
	queue    []*batchMember // requests waiting for a batch
	qbytes   int            // their encoded size (about)
	// hold fires when a queue held back by roomLocked has waited
	// maxHold (holdGen tells a stale timer's call from the current one).
	hold    *time.Timer
	holdGen uint64
}

// batchMember is one request's place in a batch.
type batchMember struct {
	r     *request
	batch *propBatch // nil while queued
	size  int        // what it adds to proposeBatcher.qbytes while queued
}

// propBatch is one batch entry on its way.
type propBatch struct {
	reqs []*request
	left int           // members still waiting (proposeBatcher.mu)
	done chan struct{} // closed once every member has its answer or gave up
}

// proposeBatched proposes r in a batch and waits for its result on ch.
func (n *Node) proposeBatched(ctx context.Context, r *request, ch chan applyResult) (applyResult, error) {
	m := n.batcher.add(n, r)
	defer n.batcher.release(m)
	select {
	case res := <-ch:
		return res, nil
	case <-ctx.Done():
		return applyResult{}, n.deadlineErr(ctx, "write")
	case <-n.done():
		select { // applied just before the stop: the answer wins
		case res := <-ch:
			return res, nil
		default:
			return applyResult{}, n.stoppedErr()
		}
	}
}

// add queues r, and starts a batch of what is queued if fewer than
// batchDepth are on their way; the batches it starts are proposed before
// it returns.
func (p *proposeBatcher) add(n *Node, r *request) *batchMember {
	m := &batchMember{r: r}
	var start [2]*propBatch
	p.mu.Lock()
	size := len(r.id) + 16
	for _, op := range r.txn.Ops {
		size += len(op.Key) + len(op.Value) + 8
	}
	if len(p.queue) >= min(maxBatchRequests, int(n.cfg.DedupWindow)) || p.qbytes+size > maxBatchBytes {
		start[0] = p.takeLocked() // full: it leaves now, beyond the depth
	}
	m.size = size
	p.queue = append(p.queue, m)
	p.qbytes += size
	if p.roomLocked() {
		start[1] = p.takeLocked()
	} else {
		p.holdLocked(n)
	}
	p.mu.Unlock()
	for _, b := range start {
		n.launch(b)
	}
	return m
}

// roomLocked reports whether what is queued leaves now: when no batch is
// on its way, or fewer than batchDepth are and the queue holds as many
// requests as they do on average. The clients of a batch come back with
// their next writes one by one as it answers them; the first of them used
// to leave alone, as the depth allowed, and the others after it in the
// next batch, so batches alternated between one request and the rest
// (16 clients spread over three members: 1.6 puts a raft entry, against
// 4.8 with the same clients on one member). Waiting until the queue is as
// large as a batch on its way (or holds maxEven) keeps the batches even;
// it never waits longer than the batches on their way take (nor than
// maxHold), and a lone client's write still leaves at once.
func (p *proposeBatcher) roomLocked() bool {
	switch {
	case p.inflight == 0:
		return true
	case p.inflight >= batchDepth:
		return false
	}
	return len(p.queue) >= maxEven || len(p.queue)*p.inflight >= p.inreqs
}

// holdLocked starts the maxHold timer for a queue roomLocked holds back
// behind fewer than batchDepth batches, unless one runs (with batchDepth
// on their way, the end of one of them decides, in finished).
func (p *proposeBatcher) holdLocked(n *Node) {
	if len(p.queue) == 0 || p.inflight >= batchDepth || p.hold != nil {
		return
	}
	p.holdGen++
	gen := p.holdGen
	p.hold = time.AfterFunc(maxHold, func() { p.holdExpired(n, gen) })
}

// holdExpired lets a queue held back by roomLocked for maxHold leave, if
// there is still room for it (gen: the hold that expired).
func (p *proposeBatcher) holdExpired(n *Node, gen uint64) {
	p.mu.Lock()
	var b *propBatch
	if gen == p.holdGen && p.hold != nil {
		p.hold = nil
		if p.inflight < batchDepth {
			b = p.takeLocked()
		}
	}
	p.mu.Unlock()
	n.launch(b)
}

// takeLocked takes the queued requests as one batch, counted in inflight
// (nil if none are queued); the caller launches it once it let go of
// p.mu.
func (p *proposeBatcher) takeLocked() *propBatch {
	if p.hold != nil {
		p.hold.Stop()
		p.hold = nil
	}
	if len(p.queue) == 0 {
		return nil
	}
	b := &propBatch{left: len(p.queue), done: make(chan struct{})}
	for _, m := range p.queue {
		m.batch = b
		b.reqs = append(b.reqs, m.r)
	}
	p.queue, p.qbytes = nil, 0
	p.inflight++
	p.inreqs += len(b.reqs)
	return b
}

// release records that m's caller has its answer or gave up: a request
// still queued leaves the queue (it was never proposed).
func (p *proposeBatcher) release(m *batchMember) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.batch == nil {
		for i, q := range p.queue {
			if q == m {
				p.queue = append(p.queue[:i:i], p.queue[i+1:]...)
				p.qbytes -= m.size // else a full-looking queue leaves early
				break
			}
		}
		return
	}
	m.batch.left--
	if m.batch.left == 0 {
		close(m.batch.done)
	}
}

// finished records that a batch is done and launches the next one.
func (p *proposeBatcher) finished(n *Node, b *propBatch) {
	p.mu.Lock()
	p.inflight--
	p.inreqs -= len(b.reqs)
	var next *propBatch
	if p.roomLocked() {
		next = p.takeLocked()
	} else {
		p.holdLocked(n) // else nothing lets it go before the batch left ends
	}
	p.mu.Unlock()
	n.launch(next)
}

// launch proposes b (if not nil) at once, from the calling goroutine, and
// starts the goroutine that proposes it again until every member has its
// answer or gave up, or the node stops, with proposeUntil's retries
// (every request in it has an ID: a copy applies at most once).
func (n *Node) launch(b *propBatch) {
	if b == nil {
		return
	}
	data := encodeBatch(b.reqs)
	leaderCh := n.leaderChanged()
	refused := n.forwardOrPropose(data)
	go func() {
		defer n.batcher.finished(n, b)
		proposeAgain(n, context.Background(), (<-chan struct{})(b.done), data, refused, leaderCh, n.forwardOrPropose)
	}()
}

// forwardOrPropose hands data to raft on the leader; a member that knows
// another leader sends it straight to that leader, as raft would forward
// it, but without waiting for this member's next Ready (which waits for
// the fsync of the Ready being written: it sat on the path of every write
// made on a follower). With no leader known the proposal is dropped, as
// raft drops it.
func (n *Node) forwardOrPropose(data []byte) <-chan error {
	switch lead, _ := n.Leader(); lead {
	case 0:
		refused := make(chan error, 1)
		refused <- raft.ErrProposalDropped
		return refused
	case n.cfg.ID:
		return n.raft.proposeAsync(data)
	default:
		n.tr.Send([]*pb.Message{{Type: pb.MsgProp.Enum(), From: new(n.cfg.ID), To: new(lead), Entries: []*pb.Entry{{Data: data}}}})
		return nil
	}
}
