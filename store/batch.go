package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
)

// The batch committer stages the transactions that wait to commit in
// batches: one staging copy of each shard per batch, not per transaction
// (copying a shard's path for every transaction was 70% of the bytes a
// commit allocated; leaves two writes of a batch share are now copied
// once, and the upper levels once per batch), and one WAL enqueue per
// batch, so that the batch shares one write and one fsync.
//
// There is no committer goroutine. A committing goroutine queues its
// request; if no batch is being led, it leads: it takes every queued
// request, commits them as one batch, and hands the lead to the oldest
// request still queued (waking it) or, if none is, gives it up. Every
// other request's goroutine sleeps until its request is decided or it is
// handed the lead.
//
// A batch keeps the invariants of DESIGN.md "Transactions and shards": the
// leader takes the gates of every shard the batch touches in ascending
// order; each transaction is evaluated against the state after the
// batch's transactions before it, its own writes kept aside (its
// effects), and only a transaction whose checks all passed writes its
// effects into the batch's private shard copies — a failed check drops
// its effects, which is still the whole rollback; the batch's records
// get consecutive indexes in batch order and one WAL batch (all or none);
// and the batch is registered for publication as one unit, published only
// once its last record is durable, so no reader sees part of it.
type committer struct {
	mu      sync.Mutex
	queue   []*commitReq // waiting, oldest first
	leading bool         // a goroutine leads: it will take the queue
}

// commitReq is one transaction waiting for the batch committer.
type commitReq struct {
	txn   *Txn
	state atomic.Int32  // reqQueued, then reqTaken, reqPromoted or reqAbandoned
	wake  chan struct{} // capacity 1: decided, or handed the lead
	lead  bool          // set before wake: this request's goroutine leads next

	// The outcome, set before wake: the entry's index and pending WAL
	// write; or, for a transaction that logged nothing (it only checked,
	// or a check failed, err being the *CheckError), a nil Pending and the
	// index of the state its checks saw, which Commit waits to see
	// published; or why it could not be logged.
	idx uint64
	p   *segment.Pending
	err error
}

// States of a commitReq. A queued request changes state once (a leader
// takes it, promotes it, or its caller abandons it); a promoted one once
// more, to taken, when its goroutine leads.
const (
	reqQueued    int32 = iota
	reqTaken           // a leader commits it
	reqPromoted        // its goroutine was handed the lead
	reqAbandoned       // its caller gave up (ctx) before a leader took it
)

// stageBatched commits txn through the batch committer, leading batches
// if no one else does, and returns its outcome (see commitReq; a logged
// entry is already registered for publication).
func (s *Store) stageBatched(ctx context.Context, txn *Txn) (uint64, *segment.Pending, error) {
	r := &commitReq{txn: txn, wake: make(chan struct{}, 1)}
	c := &s.batcher
	c.mu.Lock()
	c.queue = append(c.queue, r)
	lead := !c.leading
	c.leading = true
	c.mu.Unlock()
	s.queueChanged()
	if !lead {
		select {
		case <-r.wake:
		case <-ctx.Done():
			if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
				return 0, nil, fmt.Errorf("kvtool/store: waiting to commit: %w", ctx.Err())
			}
			<-r.wake // taken or promoted already: see it through
		}
		if !r.lead {
			return r.idx, r.p, r.err
		}
	}
	s.leadBatch()
	return r.idx, r.p, r.err
}

// leadBatch commits every queued request as one batch, then hands the
// lead on. The caller's own request is queued, so it is in the batch.
func (s *Store) leadBatch() {
	c := &s.batcher
	if h := s.leadHook; h != nil {
		h()
	}
	c.mu.Lock()
	reqs := c.queue
	c.queue = nil
	c.mu.Unlock()
	s.queueChanged()
	taken := reqs[:0]
	for _, r := range reqs {
		if r.state.CompareAndSwap(reqQueued, reqTaken) || r.state.CompareAndSwap(reqPromoted, reqTaken) {
			taken = append(taken, r)
		}
	}
	s.commitBatch(taken)
	c.mu.Lock()
	for len(c.queue) > 0 {
		next := c.queue[0]
		if next.state.CompareAndSwap(reqQueued, reqPromoted) {
			c.mu.Unlock()
			s.queueChanged()
			next.lead = true
			next.wake <- struct{}{}
			return
		}
		c.queue = c.queue[1:] // abandoned
	}
	c.leading = false
	c.mu.Unlock()
	s.queueChanged()
}

// queueChanged calls the test hook queueHook, if any.
func (s *Store) queueChanged() {
	if h := s.queueHook; h != nil {
		h()
	}
}

// commitBatch decides reqs, holding the gates of every shard they touch,
// in rounds that each fit one WAL batch, and wakes every request but the
// leader's own.
func (s *Store) commitBatch(reqs []*commitReq) {
	sts := make([]*staging, len(reqs))
	var all []int
	for i, r := range reqs {
		sts[i] = newOverlay(r.txn, s.staged)
		for _, sh := range sts[i].shards {
			if !slices.Contains(all, sh) {
				all = append(all, sh)
			}
		}
	}
	slices.Sort(all)
	_ = s.acquire(context.Background(), all) // cannot fail without a ctx to give up
	var units []*logged
	for done := 0; done < len(reqs); {
		n, l := s.commitRound(reqs[done:], sts[done:])
		if l != nil {
			units = append(units, l)
		}
		done += n
	}
	s.release(all)
	// Registered outside the gates (pubMu is the publisher's), before any
	// waiter wakes; publication waits for late registrations.
	for _, l := range units {
		s.register(l.first, l)
	}
	for _, r := range reqs {
		if !r.lead {
			r.wake <- struct{}{}
		}
	}
}

// commitRound decides a prefix of reqs whose records fit one WAL batch
// and logs them; it returns how many it decided and the logged unit to
// register (nil if nothing was logged). The caller holds the gates.
func (s *Store) commitRound(reqs []*commitReq, sts []*staging) (int, *logged) {
	rd := newRound(s.staged)
	recs := make([][]byte, 0, len(reqs))
	took := make([]*commitReq, 0, len(reqs))
	var failed []int    // requests decided without a record: their shards' state is their index
	var sawRound []bool // parallel to failed: its view held effects of this round's records
	limit, size := s.log.MaxBatchBytes(), 0
	n := 0
	for ; n < len(reqs); n++ {
		r, st := reqs[n], sts[n]
		st.base = rd.view
		if err := st.applyAll(r.txn); err != nil {
			r.err = err
			failed, sawRound = append(failed, n), append(sawRound, rd.saw(st.shards))
			continue
		}
		if len(st.effects) == 0 {
			failed, sawRound = append(failed, n), append(sawRound, rd.saw(st.shards))
			continue
		}
		rec := format.AppendTxnRecord(make([]byte, 0, format.TxnRecordSize(st.effects)), st.effects)
		frame := segment.FrameBytes(len(rec))
		if len(recs) > 0 && size+frame > limit {
			break // the next round takes it, on top of this one
		}
		size += frame
		rd.write(st.effects, len(recs))
		recs = append(recs, rec)
		took = append(took, r)
	}
	var unit *logged
	if len(recs) > 0 {
		var err error
		if unit, err = s.logRound(recs, took, rd); err != nil {
			// A request decided without a record that saw the round's
			// effects, which now never exist, gets the error: no verdict
			// may rest on them. One that saw none of them (it read only
			// shards the round had not written when it was decided)
			// keeps its verdict, as if it had been decided alone: a
			// sibling's refused enqueue (a full disk) changes nothing
			// it read.
			for j, i := range failed {
				if sawRound[j] {
					reqs[i].err = err
				} else {
					reqs[i].idx = s.seen(sts[i].shards)
				}
			}
			return n, nil
		}
	}
	for _, i := range failed {
		reqs[i].idx = s.seen(sts[i].shards)
	}
	return n, unit
}

// logRound logs a round's records as one WAL batch and, if that worked,
// makes the round's shard copies the shards' newest; it returns the unit
// to register. On a refused enqueue every logged request gets the error,
// which logRound returns, and the copies are dropped.
func (s *Store) logRound(recs [][]byte, reqs []*commitReq, rd *round) (*logged, error) {
	first, p, err := s.log.EnqueueBatch(format.FrameWALTxn, recs)
	if err != nil {
		err = s.enqueueError(err)
		for _, r := range reqs {
			r.err = err
		}
		return nil, err
	}
	for i, r := range reqs {
		r.idx, r.p = first+uint64(i), p
	}
	return rd.install(s, first, first+uint64(len(recs))-1), nil
}

// round is entries staged together on one private copy of each shard they
// write (the batch committer's round; a replica's run of entries,
// ApplyTxnsAt): a shard is copied on the round's first write to it, and
// the nodes on a path its writes share are copied once for the round, not
// once per entry. Each entry is evaluated on an overlay of the round's
// view (its effects kept aside, so a failed check writes nothing) and
// written with write once it passed; the round's copies then become the
// shards' newest together (install) and are published whole. The caller
// holds the gates of every shard the round touches.
type round struct {
	view   []*tree // every shard's version: the round's copy if it owns one
	owned  []bool  // the round has copied the shard
	writer []int   // the entry (position in the round) that last wrote each owned shard
}

// newRound starts a round on the shards' newest versions.
func newRound(staged []*tree) *round {
	return &round{view: slices.Clone(staged), owned: make([]bool, len(staged)), writer: make([]int, len(staged))}
}

// write writes the effects of the round's entry at position entry into
// the round's copies.
func (rd *round) write(effects []format.TxnEffect, entry int) {
	for _, e := range effects {
		sh := shardOf(e.Key, len(rd.view))
		if !rd.owned[sh] {
			rd.view[sh], rd.owned[sh] = rd.view[sh].Copy(), true
		}
		if e.Kind == format.TxnDelete {
			pr := probe(e.Key)
			rd.view[sh].Delete(pr)
			unprobe(pr)
		} else {
			rd.view[sh].Set(newItem(e.Key, e.Value))
		}
		rd.writer[sh] = entry
	}
}

// saw reports whether a view of shards includes the round's effects:
// whether the round has written (owns a copy of) any of them.
func (rd *round) saw(shards []int) bool {
	for _, sh := range shards {
		if rd.owned[sh] {
			return true
		}
	}
	return false
}

// install makes the round's copies the shards' newest, its entries being
// logged at first to last, and returns the unit to publish.
func (rd *round) install(s *Store, first, last uint64) *logged {
	l := &logged{first: first, last: last}
	for sh, ok := range rd.owned {
		if ok {
			s.staged[sh], s.lastIdx[sh] = rd.view[sh], first+uint64(rd.writer[sh])
			l.shards = append(l.shards, sh)
			l.trees = append(l.trees, rd.view[sh])
		}
	}
	return l
}
