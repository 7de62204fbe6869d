package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
)

// ErrReplica is returned by Commit on a store opened as a read replica: its
// log is its source's, so it takes no writes of its own.
var ErrReplica = errors.New("kvtool/store: this node is a read replica; send writes to its source")

// ErrOutOfOrder is returned (wrapped) by ApplyEntry for an entry that does
// not directly follow the local log.
var ErrOutOfOrder = errors.New("kvtool/store: replicated entry out of order")

// StoreID is the identity of the store (the source's, on a replica).
func (s *Store) StoreID() manifest.StoreID { return s.CurrentManifest().StoreID }

// Epoch is the store's epoch from the manifest.
func (s *Store) Epoch() uint64 { return s.CurrentManifest().Epoch }

// LastIndex is the last index written to the WAL (durable or not).
func (s *Store) LastIndex() uint64 {
	if s.log == nil {
		return s.Snapshot().Index()
	}
	return s.log.LastIndex()
}

// WaitApplied returns once the published state includes index idx, or ctx
// is done, or the store failed.
func (s *Store) WaitApplied(ctx context.Context, idx uint64) error {
	return s.waitPub(ctx, func() bool { return s.root.Load().index >= idx })
}

// WaitDurable returns once the WAL is durable through index idx, or ctx is
// done, or the store failed. Published entries are durable in the WAL,
// except on a cluster member, whose store publishes an applied entry
// before its WAL's fsync (ApplyTxnAt): whoever reads the WAL itself (a
// transfer's tail) waits for this, not for WaitApplied.
func (s *Store) WaitDurable(ctx context.Context, idx uint64) error {
	return s.waitPub(ctx, func() bool { return s.log == nil || s.log.DurableIndex() >= idx })
}

// waitPub waits until done (checked under pubMu) holds, the store failed,
// or ctx is done; it wakes on every publication and durability
// notice (pubCh).
func (s *Store) waitPub(ctx context.Context, done func() bool) error {
	for {
		s.pubMu.Lock()
		ok, failed, ch := done(), s.failed, s.pubCh
		s.pubMu.Unlock()
		switch {
		case ok:
			return nil
		case failed != nil:
			return failed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ApplyEntry appends an entry of the source's log to the local WAL and
// applies it: the read-replica path. e.Index must directly follow the local
// log. The record's bytes are logged unchanged, so the replica's log is the
// source's. It returns once the entry is durable and published.
func (s *Store) ApplyEntry(ctx context.Context, e segment.Entry) error {
	wait, err := s.EnqueueEntry(ctx, e)
	if err != nil {
		return err
	}
	return wait()
}

// EnqueueEntry is ApplyEntry without the wait: it logs and stages e and
// returns a func that returns once e is durable and published. Entries
// enqueued back to back share fsyncs (group commit), so a replica keeps up
// with a source that commits many transactions per fsync; waiting for each
// entry on its own would cost one fsync per entry.
func (s *Store) EnqueueEntry(ctx context.Context, e segment.Entry) (wait func() error, err error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.readOnly {
		return nil, ErrReadOnly
	}
	if !s.replica {
		// Local commits would race for the same log indexes.
		return nil, errors.New("kvtool/store: EnqueueEntry needs a store opened with Options.Replica")
	}
	if s.failedFlag.Load() {
		return nil, s.Err()
	}
	p, l, err := s.logReplicated(ctx, e)
	if err != nil {
		return nil, err
	}
	s.register(e.Index, l)
	return func() error {
		if err := p.Wait(); err != nil {
			return s.fail(err)
		}
		return s.waitPublished(e.Index)
	}, nil
}

// logReplicated stages and logs e under the replica lock and the gates of
// the shards it touches.
func (s *Store) logReplicated(ctx context.Context, e segment.Entry) (*segment.Pending, *logged, error) {
	s.replMu.Lock()
	defer s.replMu.Unlock()
	if want := s.log.LastIndex() + 1; e.Index != want {
		return nil, nil, fmt.Errorf("%w: got index %d, the local log wants %d", ErrOutOfOrder, e.Index, want)
	}
	var effects []format.TxnEffect
	if e.Type == format.FrameWALTxn {
		err := format.DecodeTxnRecord(e.Data, func(kind uint8, key, value []byte) {
			effects = append(effects, format.TxnEffect{Kind: kind, Key: string(key), Value: append([]byte(nil), value...)})
		})
		if err != nil {
			return nil, nil, fmt.Errorf("kvtool/store: replicated entry %d: %w: %v", e.Index, format.ErrCorruption, err)
		}
	}
	st := newStagingKeys(effects, s.staged)
	if err := s.acquire(ctx, st.shards); err != nil {
		return nil, nil, err
	}
	defer s.release(st.shards)
	for _, ef := range effects {
		_, pos := st.view(ef.Key)
		st.write(pos, ef.Key, ef.Value, ef.Kind)
	}
	p, err := s.log.Enqueue(e.Type, e.Data)
	if err != nil {
		return nil, nil, s.enqueueError(err)
	}
	if p.Index() != e.Index {
		return nil, nil, s.fail(fmt.Errorf("replicated entry %d was logged at index %d", e.Index, p.Index()))
	}
	return p, s.install(st, p.Index()), nil
}

// newStagingKeys is newStaging for a list of effects.
func newStagingKeys(effects []format.TxnEffect, base []*tree) *staging {
	ops := make([]Op, len(effects))
	for i, e := range effects {
		ops[i].Key = e.Key
	}
	return newStaging(&Txn{Ops: ops}, base)
}
