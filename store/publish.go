package store

import (
	"context"
	"fmt"
)

// register queues a logged transaction for publication and publishes
// whatever has become publishable (its entry may already be durable if the
// flusher was quicker than this goroutine).
func (s *Store) register(idx uint64, l *logged) {
	s.pubMu.Lock()
	s.queue[idx] = l
	s.publishLocked()
	s.pubMu.Unlock()
}

// onDurable is the WAL's durability callback: the flusher calls it in index
// order after each successful fsync, before it releases that sync's waiters.
// The log has already made last its durable index, which publishLocked
// reads.
func (s *Store) onDurable(last uint64) {
	s.pubMu.Lock()
	before := s.root.Load()
	s.publishLocked()
	if s.elsewhere > 0 && s.root.Load() == before {
		// ApplyTxnAt published these entries before their fsync: wake
		// WaitDurable, which nothing else would.
		s.notifyLocked()
	}
	s.pubMu.Unlock()
}

// publishLocked publishes, in one atomic root swap, every queued entry that
// is durable and whose predecessors are all published. An entry that is
// durable but not yet registered stops the walk; its own register call
// publishes it and everything after. Later versions of a shard include the
// earlier ones (they were staged on top), so applying entries in index order
// leaves each shard at its newest durable version.
func (s *Store) publishLocked() {
	cur := s.root.Load()
	// The WAL's durable index is stored before OnDurable runs, only ever
	// after an fsync; entries up to elsewhere are durable in a cluster's
	// raft log already (ApplyTxnAt).
	durable := max(s.log.DurableIndex(), s.elsewhere)
	next := cur.index + 1
	var shards []*tree
	for next <= durable {
		l, ok := s.queue[next]
		if !ok || l.last > durable {
			break // a batch is published whole, once its last entry is durable
		}
		delete(s.queue, next)
		next = max(next, l.last) + 1
		if shards == nil {
			shards = append([]*tree(nil), cur.shards...)
		}
		for i, sh := range l.shards {
			if l.trees[i] != nil {
				shards[sh] = l.trees[i]
			}
		}
	}
	if shards != nil {
		s.root.Store(&Snapshot{index: next - 1, shards: shards})
		s.notifyLocked()
	}
}

// waitPublished returns once the published state includes idx, or the store
// failed. Normally the flusher published it before releasing the WAL
// waiters, so this returns at once.
func (s *Store) waitPublished(idx uint64) error {
	if s.root.Load().index >= idx {
		return nil
	}
	return s.WaitApplied(context.Background(), idx)
}

// notifyLocked wakes everyone waiting for a publication or the failure
// (WaitApplied): it closes the current channel and starts a new one.
func (s *Store) notifyLocked() {
	close(s.pubCh)
	s.pubCh = make(chan struct{})
}

// fail puts the store in the failed state (fail stop after a WAL error):
// nothing is acknowledged from now on, readers keep the last published
// state.
func (s *Store) fail(err error) error {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	if s.failed == nil {
		s.failed = fmt.Errorf("%w: %v", ErrFailed, err)
		s.failedFlag.Store(true)
		s.notifyLocked()
	}
	return s.failed
}
