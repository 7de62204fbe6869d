package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
)

// This file is the store's side of a cluster node (package cluster): the
// log is decided by raft, and each committed entry is applied here, in
// order, at the index raft gave it. The store is opened with
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
	if err := s.replicaWritable(); err != nil {
		return nil, nil, err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, nil, ErrClosed
	}
	if txn != nil {
		if checkErr = txn.Validate(); checkErr != nil {
			txn = nil
		}
	}
	p, l, checkErr2, err := s.evaluateAt(ctx, idx, txn, checkErr != nil, onAbort)
	if err != nil {
		return nil, nil, err
	}
	if checkErr == nil {
		checkErr = checkErr2
	}
	s.pubMu.Lock()
	s.elsewhere, s.elsewhereP = idx, p
	s.queue[idx] = l
	s.publishLocked()
	s.pubMu.Unlock()
	return func() error {
		if err := p.Wait(); err != nil {
			return s.fail(err)
		}
		return s.waitPublished(idx)
	}, checkErr, nil
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

// evaluateAt stages txn under the replica lock and its shards' gates and
// logs its effects at idx (a no-op if it changed nothing or failed).
// With invalid set (txn failed validation, and is nil), onAbort is logged.
func (s *Store) evaluateAt(ctx context.Context, idx uint64, txn *Txn, invalid bool, onAbort []Op) (*segment.Pending, *logged, error, error) {
	s.replMu.Lock()
	defer s.replMu.Unlock()
	if want := s.log.LastIndex() + 1; idx != want {
		return nil, nil, nil, fmt.Errorf("%w: got index %d, the local log wants %d", ErrOutOfOrder, idx, want)
	}
	if txn == nil {
		txn = &Txn{}
	}
	// The gates of every shard either outcome may write, in order.
	all := txn
	if len(onAbort) > 0 {
		all = &Txn{Ops: append(slices.Clip(txn.Ops), onAbort...)}
	}
	gated := newStaging(all, s.staged).shards
	if err := s.acquire(ctx, gated); err != nil {
		return nil, nil, nil, err
	}
	defer s.release(gated)
	st := newStaging(txn, s.staged)
	var checkErr error
	for i, op := range txn.Ops {
		if checkErr = st.apply(i, op); checkErr != nil {
			break
		}
	}
	if checkErr != nil || invalid {
		st = newStaging(&Txn{Ops: onAbort}, s.staged) // drop the private copies: the whole rollback
		for i, op := range onAbort {
			if err := st.apply(i, op); err != nil { // puts and deletes cannot fail a check
				return nil, nil, nil, fmt.Errorf("kvtool/store: entry %d: the abort record failed: %w", idx, err)
			}
		}
	}
	t, rec := format.FrameWALNoop, []byte(nil)
	if len(st.effects) > 0 {
		t, rec = format.FrameWALTxn, format.AppendTxnRecord(make([]byte, 0, format.TxnRecordSize(st.effects)), st.effects)
	}
	p, err := s.log.Enqueue(t, rec)
	if err != nil {
		return nil, nil, nil, s.fail(err)
	}
	if p.Index() != idx {
		return nil, nil, nil, s.fail(fmt.Errorf("entry %d was logged at index %d", idx, p.Index()))
	}
	return p, s.install(st, idx), checkErr, nil
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
