package store

import (
	"context"
	"fmt"

	"github.com/kvtool/kvtool/checkpoint"
)

// InstallState replaces the whole state of a replica with src, the state
// of another store at index src.Index() (a raft snapshot a cluster member
// received), and returns once it is durable and published. It never goes
// back: src must be past the local log's last index.
//
// The steps, in the order that makes a crash at any point recover to the
// old state or the new one, never a mix: (1) src is written as a
// checkpoint in DATA/snap (unreferenced until step 2); (2) the manifest
// names it as the base, with no deltas and the WAL needed only after its
// index: the commit point; (3) the WAL skips to the index after src
// (segment.Log.SkipTo removes the segments before it). A crash between 2
// and 3 leaves a WAL that ends before what the manifest needs; Open then
// finishes step 3 (see skipStaleWAL). Readers keep the old published state
// until the new one is published at the end.
func (s *Store) InstallState(ctx context.Context, src *Snapshot) error {
	if err := s.replicaWritable(); err != nil {
		return err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.maintMu.Lock()
	defer s.maintMu.Unlock()
	s.replMu.Lock()
	defer s.replMu.Unlock()
	idx := src.Index()
	if last := s.log.LastIndex(); idx <= last {
		return fmt.Errorf("kvtool/store: install a state at index %d over a log that already ends at %d: a replica never goes back", idx, last)
	}
	if err := s.WaitApplied(ctx, s.log.LastIndex()); err != nil {
		return err
	}
	all := make([]int, len(s.gates))
	for i := range all {
		all[i] = i
	}
	if err := s.acquire(ctx, all); err != nil {
		return err
	}
	defer s.release(all)
	m := s.CurrentManifest()
	snap := &Snapshot{index: idx, shards: reshard(src, m.Shards)}
	meta := checkpoint.Meta{StoreID: m.StoreID, Index: idx, Term: s.term(), Shards: m.Shards}
	info, err := checkpoint.Write(s.fs, s.snapDir(), meta, snapshotSource{snap}, s.writeOpts(ctx))
	if err != nil {
		return fmt.Errorf("kvtool/store: install state at index %d: %w", idx, err)
	}
	ref := info.Ref()
	m.Base, m.Deltas, m.WALFirstIndex = &ref, nil, idx+1
	if err := s.publishManifest(&m); err != nil {
		return fmt.Errorf("kvtool/store: install state at index %d: %w", idx, err)
	}
	if err := s.skipWAL(idx + 1); err != nil {
		return s.fail(err)
	}
	for i := range s.staged {
		s.staged[i], s.lastIdx[i] = snap.shards[i], idx
	}
	s.pubMu.Lock()
	s.dirty, s.walDirty = map[string]struct{}{}, indexRange{}
	s.queue = map[uint64]*logged{}
	s.root.Store(snap)
	s.notifyLocked()
	s.pubMu.Unlock()
	return nil
}

// skipWAL makes next the WAL's next index, removing the segments before
// it (InstallState's step 3).
func (s *Store) skipWAL(next uint64) error {
	if err := s.log.SkipTo(next); err != nil {
		return fmt.Errorf("skip the WAL to index %d: %w", next, err)
	}
	return nil
}

// skipStaleWAL finishes an InstallState a crash interrupted: the manifest
// needs the WAL only from WALFirstIndex on, but the WAL ends before it.
func (s *Store) skipStaleWAL() error {
	first := s.man.WALFirstIndex
	if first == 0 || s.log.LastIndex()+1 >= first {
		return nil
	}
	if err := s.skipWAL(first); err != nil {
		return fmt.Errorf("finish installing the state at index %d: %w", first-1, err)
	}
	return nil
}

// reshard returns src's shards as n shards: src's own trees when it has n
// (trees are immutable once published, so they may be shared), else its
// items routed to n new trees.
func reshard(src *Snapshot, n int) []*tree {
	if len(src.shards) == n {
		return append([]*tree(nil), src.shards...)
	}
	out := make([]*tree, n)
	for i := range out {
		out[i] = newTree()
	}
	src.Scan(ScanOptions{}, func(key string, val []byte) bool {
		out[shardOf(key, n)].Set(newItem(key, val))
		return true
	})
	return out
}
