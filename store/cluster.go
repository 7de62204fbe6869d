package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
)

// This file is the store's side of a cluster node (package cluster): the
// log is decided by raft, and each committed entry is applied here, in
// order, at the index raft gave it (consecutive entries may come as one
// run, ApplyTxnsAt, staged and published together). The store is opened with
// Options.Replica, so its own Commit refuses and its WAL holds exactly one
// record per raft index: the effects of a transaction, or a no-op for an
// entry that changed nothing (an empty raft entry, a membership change, a
// transaction whose check failed). Recovery, checkpoints, deltas, replay
// and transfers see an ordinary store.

// ApplyTxnAt evaluates txn as log entry idx, which must directly follow the
// local log, against the state after every entry before it (checks are
// decided there, so every node decides them alike), and logs its effects.
// A transaction that fails a check, or is invalid, changes nothing: a no-op
// is logged at idx and checkErr says why (a *CheckError, or an error
// wrapping ErrInvalid). A nil txn logs a no-op.
//
// The entry is published at once, before the WAL's fsync: a cluster
// applies only committed entries, which its raft log holds durably, so
// the store's WAL need not be on a write's path. After a crash the store
// recovers the WAL's durable prefix, and the cluster applies the rest
// again from its raft log (it resumes after the store's index, and
// compacts its log only below a checkpoint). Checkpoints and deltas wait
// for the WAL to be durable through the state they save (syncPublished),
// so the manifest never runs ahead of the WAL. wait returns once the
// entry is durable in the WAL too; entries applied back to back share
// fsyncs.
func (s *Store) ApplyTxnAt(ctx context.Context, idx uint64, txn *Txn) (wait func() error, checkErr error, err error) {
	return s.ApplyTxnAtOr(ctx, idx, txn, nil)
}

// ApplyTxnAtOr is ApplyTxnAt, except that when txn fails a check (or is
// invalid) the operations onAbort (puts and deletes, no checks) are logged
// at idx instead of a no-op: a cluster records there that a request ID was
// decided, so a later copy of the same request is a duplicate of that
// decision rather than a second chance to apply.
func (s *Store) ApplyTxnAtOr(ctx context.Context, idx uint64, txn *Txn, onAbort []Op) (wait func() error, checkErr error, err error) {
	wait, checkErrs, err := s.ApplyTxnsAt(ctx, idx, []EntryTxn{{Txn: txn, OnAbort: onAbort}})
	if err != nil {
		return nil, nil, err
	}
	return wait, checkErrs[0], nil
}

// EntryTxn is one log entry for ApplyTxnsAt: its transaction (nil: a
// no-op) and the operations to log instead when the transaction fails a
// check or is invalid (ApplyTxnAtOr's onAbort).
type EntryTxn struct {
	Txn     *Txn
	OnAbort []Op
	// Valid says the caller found Txn valid (Txn.Validate returned nil),
	// so ApplyTxnsAt does not check it again.
	Valid bool
}

// ApplyTxnsAt applies ents as the log entries first, first+1, ..., each
// as ApplyTxnAtOr would apply it alone: its checks decided against the
// state after every entry before it (the earlier ones of ents included),
// a failed or invalid transaction changing nothing of itself (its OnAbort
// is logged) and nothing of the others. checkErrs[i] is ents[i]'s.
//
// The entries are staged as one round (one copy of each shard they write,
// so the copy-on-write paths their writes share are copied once, not once
// per entry) and published with one root swap, so a reader sees all of
// them or none; a cluster applies the committed entries of a Ready this
// way (issue 11 "Speed"). wait returns once the last is durable in the
// WAL too.
func (s *Store) ApplyTxnsAt(ctx context.Context, first uint64, ents []EntryTxn) (wait func() error, checkErrs []error, err error) {
	if len(ents) == 0 {
		return nil, nil, errors.New("kvtool/store: ApplyTxnsAt without entries")
	}
	if err := s.replicaWritable(); err != nil {
		return nil, nil, err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, nil, ErrClosed
	}
	checkErrs = make([]error, len(ents))
	for i, e := range ents {
		if e.Txn != nil && !e.Valid {
			checkErrs[i] = e.Txn.Validate()
		}
	}
	p, l, err := s.evaluateAt(ctx, first, ents, checkErrs)
	if err != nil {
		return nil, nil, err
	}
	last := l.last
	s.pubMu.Lock()
	s.elsewhere, s.elsewhereP = last, p
	s.queue[first] = l
	s.publishLocked()
	s.pubMu.Unlock()
	return func() error {
		if err := p.Wait(); err != nil {
			return s.fail(err)
		}
		return s.waitPublished(last)
	}, checkErrs, nil
}

// syncPublished returns once the WAL is durable through idx, an index
// already published: ApplyTxnAt publishes before the WAL's fsync, and a
// checkpoint or delta of that state must not be recorded in the manifest
// while the WAL behind it could still lose entries (a restart would find
// the WAL ending before the manifest's index).
func (s *Store) syncPublished(idx uint64) error {
	if s.log == nil || s.log.DurableIndex() >= idx {
		return nil
	}
	s.pubMu.Lock()
	p := s.elsewhereP
	s.pubMu.Unlock()
	if h := s.syncWaitHook; h != nil {
		h(idx)
	}
	if p == nil || p.Index() < idx {
		return fmt.Errorf("kvtool/store: the published index %d is not durable in the WAL %s (durable through %d), and no entry after it is being written", idx, filepath.Join(s.dir, format.WALDir), s.log.DurableIndex())
	}
	s.log.Hurry(p) // a member's WAL syncs at intervals (WALSyncInterval): do not wait one out
	if err := p.Wait(); err != nil {
		return s.fail(err)
	}
	return nil
}

// replicaWritable refuses ApplyTxnAt on a store that is not a writable
// replica.
func (s *Store) replicaWritable() error {
	switch {
	case s.readOnly:
		return ErrReadOnly
	case !s.replica:
		return errors.New("kvtool/store: ApplyTxnAt needs a store opened with Options.Replica")
	case s.failedFlag.Load():
		return s.Err()
	}
	return nil
}

// evaluateAt stages ents as one round under the replica lock and the
// gates of every shard they may write, and logs each one's effects at
// first, first+1, ... (a no-op for an entry that changed nothing). An
// entry whose checkErrs is set on entry (invalid), or whose check fails
// here (checkErrs is set), logs its OnAbort instead. It returns the last
// entry's pending WAL write and the round to publish.
func (s *Store) evaluateAt(ctx context.Context, first uint64, ents []EntryTxn, checkErrs []error) (*segment.Pending, *logged, error) {
	s.replMu.Lock()
	defer s.replMu.Unlock()
	if want := s.log.LastIndex() + 1; first != want {
		return nil, nil, fmt.Errorf("%w: got index %d, the local log wants %d", ErrOutOfOrder, first, want)
	}
	gated := s.entryShards(ents)
	if err := s.acquire(ctx, gated); err != nil {
		return nil, nil, err
	}
	defer s.release(gated)
	rd := newRound(s.staged)
	recs := make([][]byte, len(ents))
	for i, e := range ents {
		effects, err := rd.evaluate(e, &checkErrs[i])
		if err != nil {
			return nil, nil, fmt.Errorf("kvtool/store: entry %d: %w", first+uint64(i), err)
		}
		rd.write(effects, i)
		if len(effects) > 0 {
			recs[i] = format.AppendTxnRecord(make([]byte, 0, format.TxnRecordSize(effects)), effects)
		}
	}
	var p *segment.Pending
	for i, rec := range recs {
		t := format.FrameWALTxn
		if rec == nil {
			t = format.FrameWALNoop
		}
		var err error
		if p, err = s.log.Enqueue(t, rec); err != nil {
			return nil, nil, s.fail(err)
		}
		if idx := first + uint64(i); p.Index() != idx {
			return nil, nil, s.fail(fmt.Errorf("entry %d was logged at index %d", idx, p.Index()))
		}
	}
	last := first + uint64(len(ents)) - 1
	return p, rd.install(s, first, last), nil
}

// entryShards returns, ascending, the shards that ents may write, whatever
// their outcome.
func (s *Store) entryShards(ents []EntryTxn) []int {
	touched := make([]bool, len(s.staged))
	for _, e := range ents {
		if e.Txn != nil {
			for _, op := range e.Txn.Ops {
				touched[shardOf(op.Key, len(touched))] = true
			}
		}
		for _, op := range e.OnAbort {
			touched[shardOf(op.Key, len(touched))] = true
		}
	}
	var shards []int
	for sh, ok := range touched {
		if ok {
			shards = append(shards, sh)
		}
	}
	return shards
}

// evaluate decides entry e on the round's view, with *checkErr already set
// if its transaction is invalid, and returns the effects to write: its
// transaction's, or, if that failed a check (*checkErr is then set) or is
// invalid, its OnAbort's.
func (rd *round) evaluate(e EntryTxn, checkErr *error) ([]format.TxnEffect, error) {
	if e.Txn != nil && *checkErr == nil {
		st := newOverlay(e.Txn, rd.view)
		if *checkErr = st.applyAll(e.Txn); *checkErr == nil {
			return st.effects, nil
		}
	}
	if *checkErr == nil || len(e.OnAbort) == 0 {
		return nil, nil
	}
	abort := &Txn{Ops: e.OnAbort}
	st := newOverlay(abort, rd.view)
	if err := st.applyAll(abort); err != nil { // puts and deletes cannot fail a check
		return nil, fmt.Errorf("the abort record failed: %w", err)
	}
	return st.effects, nil
}

// GetNewest returns the newest value of key: the state after every entry
// logged so far, published or not. On a replica, whose log only
// ApplyTxnAt and EnqueueEntry grow, that is the state after every entry
// applied so far — what the next ApplyTxnAt will see.
func (s *Store) GetNewest(key string) ([]byte, bool) {
	sh := shardOf(key, len(s.gates))
	s.gates[sh] <- struct{}{}
	t := s.staged[sh]
	<-s.gates[sh]
	pr := probe(key)
	it, ok := t.Get(pr)
	unprobe(pr)
	if !ok {
		return nil, false
	}
	return it.p.val, true
}
