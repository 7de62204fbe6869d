package store

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/delta"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
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
	return s.installState(ctx, src.Index(), func(m *manifest.Manifest) (*Snapshot, *walTail, error) {
		snap, err := s.writeState(ctx, m, src)
		return snap, nil, err
	})
}

// writeState writes src as a checkpoint in DATA/snap and points m at it
// (InstallState's step 1).
func (s *Store) writeState(ctx context.Context, m *manifest.Manifest, src *Snapshot) (*Snapshot, error) {
	snap := &Snapshot{index: src.Index(), shards: reshard(src, m.Shards)}
	meta := checkpoint.Meta{StoreID: m.StoreID, Index: snap.index, Term: s.term(), Shards: m.Shards}
	info, err := checkpoint.Write(s.fs, s.snapDir(), meta, snapshotSource{snap}, s.writeOpts(ctx))
	if err != nil {
		return nil, err
	}
	ref := info.Ref()
	m.Base, m.Deltas = &ref, nil
	return snap, nil
}

// InstallFrom is InstallState for the state of src, a store opened read-only
// on a complete data directory (a snapshot a cluster member received: a
// base checkpoint at some index C and the WAL after it up to src's index
// T), which must stay open until it returns. Instead of encoding the whole
// state again it adopts src's files, the way an LSM ingests a table: src's
// base is copied block for block into DATA/snap under this store's
// identity (table.Restamp: one sequential read and write, no decoding or
// compression), and src's WAL entries C+1..T are logged, unchanged, into
// this store's WAL, which the manifest then needs from C+1 (as after a
// checkpoint at C and the entries since): a store whose log ends past C
// writes them as one delta from C to T instead. The in-memory state is
// src's, already loaded by src's open (parallel block decode, bulk load),
// and is published once the WAL holds the entries after it. The copied
// base is unreferenced until the manifest names it (the commit point), so
// a crash leaves the old state, the new one, or, while the tail is being
// logged, the state at an entry between them on the same log (the
// manifest names the base at C, the WAL ends before T). src's files are
// only read, so an install a crash interrupted can start over from them;
// run again on a state between, it writes the state as InstallState does
// (this store's manifest then names the base's name).
//
// When src's files cannot be adopted as they are (src has deltas or
// another shard count, or this store's manifest names a file by its
// base's name: its own base at C), InstallFrom writes the state as
// InstallState does.
func (s *Store) InstallFrom(ctx context.Context, src *Store) error {
	sm, snap := src.CurrentManifest(), src.Snapshot()
	return s.installState(ctx, snap.Index(), func(m *manifest.Manifest) (*Snapshot, *walTail, error) {
		if !adoptable(m, &sm) {
			snap, err := s.writeState(ctx, m, snap)
			return snap, nil, err
		}
		tail, err := s.adopt(ctx, m, src, &sm, snap)
		return snap, tail, err
	})
}

// adoptable reports whether a store whose manifest is m (under its
// maintenance lock, so it cannot change meanwhile) can adopt the files of
// a store whose manifest is sm.
func adoptable(m, sm *manifest.Manifest) bool {
	if sm.Base == nil || len(sm.Deltas) > 0 || sm.Shards != m.Shards {
		return false
	}
	return !names(m, sm.Base.Name)
}

// names reports whether manifest m names the file name in DATA/snap. A
// file it does not name is garbage (left by an install a crash
// interrupted, say), which a new file may replace.
func names(m *manifest.Manifest, name string) bool {
	if m.Base != nil && m.Base.Name == name {
		return true
	}
	for _, d := range m.Deltas {
		if d.Name == name {
			return true
		}
	}
	return false
}

// adopt writes src's base (manifest sm) restamped as this store's into
// DATA/snap and points m at it. src's WAL tail up to snap is returned to
// be logged (installState) if this store's log ends at or before the
// base, else written as a delta m also points at.
func (s *Store) adopt(ctx context.Context, m *manifest.Manifest, src *Store, sm *manifest.Manifest, snap *Snapshot) (*walTail, error) {
	from := sm.Base.Index
	path := filepath.Join(src.snapDir(), sm.Base.Name)
	old, err := checkpoint.ReadInfo(src.fs, path)
	if err != nil {
		return nil, err
	}
	meta := old.Meta
	meta.StoreID = m.StoreID
	info, err := checkpoint.Restamp(src.fs, path, s.fs, s.snapDir(), meta)
	if err != nil {
		return nil, err
	}
	ref := info.Ref()
	m.Base, m.Deltas = &ref, nil
	tail := indexRange{from: from + 1, to: snap.Index()}
	switch {
	case snap.Index() == from:
		return nil, nil
	case s.log.LastIndex() <= from:
		return &walTail{src: src, r: tail}, nil
	}
	keys := map[string]struct{}{}
	if err := src.addWALKeys(keys, tail); err != nil {
		return nil, err
	}
	dm := delta.Meta{StoreID: m.StoreID, From: from, To: snap.Index(), Term: s.term(), Parent: ref.Name}
	d, err := delta.Write(s.fs, s.snapDir(), dm, setKeys(keys), snap, s.writeOpts(ctx))
	if err != nil {
		return nil, err
	}
	m.Deltas = []manifest.FileRef{d.Ref()}
	return nil, nil
}

// walTail is the WAL an install keeps as WAL rather than folding it into
// the files it writes: src's entries r.from..r.to.
type walTail struct {
	src *Store
	r   indexRange
}

// logTail logs t's entries, unchanged, into the WAL (which must be at
// t.r.from) and returns once they are durable. They are not published:
// installState publishes the state they lead to.
func (s *Store) logTail(t *walTail) error {
	rd, err := segment.NewReader(t.src.fs, filepath.Join(t.src.dir, format.WALDir), t.r.from)
	if err != nil {
		return err
	}
	defer rd.Close()
	var last *segment.Pending
	for want := t.r.from; want <= t.r.to; want++ {
		e, err := rd.Next()
		if err == io.EOF {
			return fmt.Errorf("the WAL of %s ends at %d, before %d", t.src.dir, want-1, t.r.to)
		} else if err != nil {
			return err
		}
		if e.Index != want {
			return fmt.Errorf("the WAL of %s holds entry %d where %d was expected", t.src.dir, e.Index, want)
		}
		p, err := s.log.Enqueue(e.Type, e.Data)
		if err != nil {
			return err
		}
		if p.Index() != want {
			return fmt.Errorf("entry %d of %s was logged at index %d", want, t.src.dir, p.Index())
		}
		last = p
	}
	return last.Wait()
}

// installState replaces the state with the one stage writes at index idx (see
// InstallState for the steps): stage writes the new files into DATA/snap,
// points the manifest it is given at them, and returns the state at idx
// and the WAL entries after its files (nil: none; they end at idx);
// installState then publishes the manifest (the commit point), skips the
// WAL to the first entry it needs, logs those entries, and publishes the
// state.
func (s *Store) installState(ctx context.Context, idx uint64, stage func(m *manifest.Manifest) (*Snapshot, *walTail, error)) error {
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
	snap, tail, err := stage(&m)
	if err != nil {
		return fmt.Errorf("kvtool/store: install state at index %d: %w", idx, err)
	}
	m.WALFirstIndex = idx + 1
	if tail != nil {
		m.WALFirstIndex = tail.r.from // a next delta reads the tail's keys from the WAL
	}
	if err := s.publishManifest(&m); err != nil {
		return fmt.Errorf("kvtool/store: install state at index %d: %w", idx, err)
	}
	if s.log.LastIndex()+1 < m.WALFirstIndex {
		if err := s.skipWAL(m.WALFirstIndex); err != nil {
			return s.fail(err)
		}
	}
	if tail != nil {
		if err := s.logTail(tail); err != nil {
			return s.fail(fmt.Errorf("log entries %d..%d of the installed state: %w", tail.r.from, tail.r.to, err))
		}
	}
	for i := range s.staged {
		s.staged[i], s.lastIdx[i] = snap.shards[i], idx
	}
	s.pubMu.Lock()
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
