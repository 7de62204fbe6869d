package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/delta"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
)

// ErrNothingToDo is returned (wrapped) by maintenance that found nothing to
// do: no change since the last snapshot, no delta to merge.
var ErrNothingToDo = errors.New("kvtool/store: nothing to do")

// CompactResult says what Compact did.
type CompactResult struct {
	Checkpoint      checkpoint.Info `json:"-"`
	WALFirstIndex   uint64          `json:"wal_first_index"`
	DroppedSegments []string        `json:"dropped_segments"`
	RemovedFiles    []string        `json:"removed_files"`
}

func (s *Store) snapDir() string { return filepath.Join(s.dir, format.SnapDir) }

// CurrentManifest returns a copy of the manifest as last published.
func (s *Store) CurrentManifest() manifest.Manifest {
	s.manMu.Lock()
	defer s.manMu.Unlock()
	m := *s.man
	if m.Base != nil {
		b := *m.Base
		m.Base = &b
	}
	m.Deltas = slices.Clone(m.Deltas)
	return m
}

// publishManifest durably replaces the manifest. If it fails, the old
// manifest (which names files that all still exist) stays in force on disk
// and in memory, so a failure here loses nothing.
func (s *Store) publishManifest(m *manifest.Manifest) error {
	if err := manifest.Publish(s.fs, s.dir, m); err != nil {
		return fmt.Errorf("publish manifest: %w", err)
	}
	s.manMu.Lock()
	s.man = m
	s.manMu.Unlock()
	return nil
}

// maintenance runs f with the maintenance lock held, on a writable store.
func (s *Store) maintenance(ctx context.Context, f func() error) error {
	if s.readOnly {
		return ErrReadOnly
	}
	// Held shared for the whole step, so Close waits for it and no file is
	// written after the directory lock is released.
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.maintMu.Lock()
	defer s.maintMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	return f()
}

// Checkpoint writes a checkpoint of the current published state into
// DATA/snap and makes it the manifest's base: the deltas are folded away and
// the WAL is needed only after its index. It streams from a frozen snapshot,
// so readers and writers keep going. The WAL segments it makes unneeded are
// dropped by Compact, not here.
func (s *Store) Checkpoint(ctx context.Context) (info checkpoint.Info, err error) {
	err = s.maintenance(ctx, func() error {
		info, err = s.checkpointLocked(ctx)
		return err
	})
	return info, err
}

// writeOpts are the options maintenance writes a file with: the store's,
// stopped by ctx between blocks (the file is then abandoned, the manifest
// untouched).
func (s *Store) writeOpts(ctx context.Context) checkpoint.Options {
	o := s.maintOpts
	o.Context = ctx
	return o
}

func (s *Store) checkpointLocked(ctx context.Context) (checkpoint.Info, error) {
	snap := s.root.Load()
	if err := s.syncPublished(snap.Index()); err != nil {
		return checkpoint.Info{}, err
	}
	m := s.CurrentManifest()
	if m.Base != nil && m.Base.Index == snap.Index() && len(m.Deltas) == 0 {
		return checkpoint.Info{}, fmt.Errorf("%w: the state at index %d is already checkpointed as %s", ErrNothingToDo, snap.Index(), m.Base.Name)
	}
	meta := checkpoint.Meta{StoreID: m.StoreID, Index: snap.Index(), Term: s.term(), Shards: m.Shards}
	info, err := checkpoint.Write(s.fs, s.snapDir(), meta, snapshotSource{snap}, s.writeOpts(ctx))
	if err != nil {
		return info, err
	}
	ref := info.Ref()
	m.Base, m.Deltas, m.WALFirstIndex = &ref, nil, snap.Index()+1
	if err := s.publishManifest(&m); err != nil {
		return info, err
	}
	return info, nil
}

// Delta writes the keys changed since the last base or delta (their values
// at the published index, or tombstones) as a delta file and appends it to
// the manifest's chain. The changed keys are those of the WAL entries after
// the chain's index, which the WAL always holds (recovery replays them): a
// delta reads them there rather than every commit recording its keys in a
// set (a map insert per written key on the commit path, 4% of a cluster
// member's CPU under load, and a set as large as the keys written since the
// last delta for the collector to scan).
func (s *Store) Delta(ctx context.Context) (info delta.Info, err error) {
	err = s.maintenance(ctx, func() error {
		info, err = s.deltaLocked(ctx)
		return err
	})
	return info, err
}

func (s *Store) deltaLocked(ctx context.Context) (delta.Info, error) {
	snap := s.root.Load()
	if err := s.syncPublished(snap.Index()); err != nil {
		return delta.Info{}, err
	}
	m := s.CurrentManifest()
	from := m.SnapshotIndex()
	if snap.Index() == from {
		return delta.Info{}, fmt.Errorf("%w: no change since index %d", ErrNothingToDo, from)
	}
	all := map[string]struct{}{}
	if err := s.addWALKeys(all, indexRange{from: from + 1, to: snap.Index()}); err != nil {
		return delta.Info{}, err
	}
	meta := delta.Meta{StoreID: m.StoreID, From: from, To: snap.Index(), Term: s.term(), Parent: chainTip(&m)}
	info, err := delta.Write(s.fs, s.snapDir(), meta, setKeys(all), snap, s.writeOpts(ctx))
	if err != nil {
		return info, err
	}
	m.Deltas = append(m.Deltas, info.Ref())
	if err := s.publishManifest(&m); err != nil {
		return info, err
	}
	return info, nil
}

// addWALKeys adds to keys every key changed by the WAL entries in r. The
// WAL must hold every one of them: a delta covers the keys it finds here
// and nothing else, so an entry missing at either end of r (a WAL that
// starts after r.from, or ends before r.to) is an error, never a delta
// that silently leaves its keys out.
func (s *Store) addWALKeys(keys map[string]struct{}, r indexRange) error {
	if r.from == 0 || r.to < r.from {
		return nil
	}
	dir := filepath.Join(s.dir, format.WALDir)
	rd, err := segment.NewReader(s.fs, dir, r.from)
	if err != nil {
		return err
	}
	defer rd.Close()
	for next := r.from; ; next++ {
		e, err := rd.Next()
		switch {
		case err == io.EOF:
			return fmt.Errorf("kvtool/store: the keys changed since the last snapshot are those of WAL entries %d..%d, but the WAL %s ends at %d", r.from, r.to, dir, next-1)
		case err != nil:
			return fmt.Errorf("read the keys changed since the last snapshot from the WAL %s: %w", dir, err)
		case e.Index != next:
			return fmt.Errorf("kvtool/store: the keys changed since the last snapshot are those of WAL entries %d..%d, but the WAL %s holds %d where %d was expected", r.from, r.to, dir, e.Index, next)
		}
		if e.Type == format.FrameWALTxn {
			err = format.DecodeTxnRecord(e.Data, func(_ uint8, key, _ []byte) { keys[string(key)] = struct{}{} })
			if err != nil {
				return fmt.Errorf("%s: WAL entry %d: %w: %v (kvtool wal dump shows it)", dir, e.Index, format.ErrCorruption, err)
			}
		}
		if e.Index == r.to {
			// Done: asking for the next entry would read the rest of the
			// segment (up to its preallocated size) to find its end.
			return nil
		}
	}
}

// chainTip names the file the next delta builds on: the newest delta, else
// the base, else "" (the empty state at index 0).
func chainTip(m *manifest.Manifest) string {
	if n := len(m.Deltas); n > 0 {
		return m.Deltas[n-1].Name
	}
	if m.Base != nil {
		return m.Base.Name
	}
	return ""
}

// Merge folds the base and its deltas into a new base checkpoint at the last
// delta's index, by a streaming merge whose memory does not depend on the
// size of the state.
func (s *Store) Merge(ctx context.Context) (info checkpoint.Info, err error) {
	err = s.maintenance(ctx, func() error {
		info, err = s.mergeLocked(ctx)
		return err
	})
	return info, err
}

func (s *Store) mergeLocked(ctx context.Context) (checkpoint.Info, error) {
	m := s.CurrentManifest()
	if len(m.Deltas) == 0 {
		return checkpoint.Info{}, fmt.Errorf("%w: the manifest has no deltas to merge", ErrNothingToDo)
	}
	base := ""
	if m.Base != nil {
		base = filepath.Join(s.snapDir(), m.Base.Name)
	}
	paths := make([]string, len(m.Deltas))
	for i, d := range m.Deltas {
		paths[i] = filepath.Join(s.snapDir(), d.Name)
	}
	info, err := delta.Merge(s.fs, s.snapDir(), base, paths, delta.MergeOptions{Options: s.writeOpts(ctx), Shards: m.Shards})
	if err != nil {
		return info, err
	}
	ref := info.Ref()
	m.Base, m.Deltas, m.WALFirstIndex = &ref, nil, ref.Index+1
	return info, s.publishManifest(&m)
}

// Compact checkpoints the state (unless it already is), then drops the WAL
// segments and snapshot files the manifest no longer needs — keeping what a
// lease pins — so restart time and disk use stay bounded.
func (s *Store) Compact(ctx context.Context) (res CompactResult, err error) {
	err = s.maintenance(ctx, func() error {
		info, err := s.checkpointLocked(ctx)
		if err != nil && !errors.Is(err, ErrNothingToDo) {
			return err
		}
		res.Checkpoint = info
		return s.collectLocked(&res)
	})
	return res, err
}

// collectLocked removes what the manifest does not need and no lease pins.
func (s *Store) collectLocked(res *CompactResult) error {
	m := s.CurrentManifest()
	// No lease may be acquired between deciding what to keep and dropping
	// the rest (found in review: a lease taken in that window was promised
	// WAL that compaction then dropped).
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	keepFrom, pinned := s.retentionLocked(m.WALFirstIndex)
	res.WALFirstIndex = m.WALFirstIndex
	if err := s.sealIfUnneeded(keepFrom); err != nil {
		return err
	}
	dropped, err := s.log.DropBefore(keepFrom)
	res.DroppedSegments = dropped
	if err != nil {
		return fmt.Errorf("drop WAL segments before %d: %w", keepFrom, err)
	}
	removed, err := s.removeUnnamed(&m, pinned)
	res.RemovedFiles = removed
	return err
}

// sealIfUnneeded rotates the WAL when its active segment holds only entries
// before keepFrom, so that DropBefore (which never drops the active segment)
// can drop it: otherwise a WAL that fits in one segment would never shrink.
func (s *Store) sealIfUnneeded(keepFrom uint64) error {
	segs := s.log.Segments()
	if len(segs) == 0 {
		return nil
	}
	if a := segs[len(segs)-1]; a.Records > 0 && a.LastIndex < keepFrom {
		if err := s.log.Rotate(); err != nil {
			return fmt.Errorf("seal the WAL's active segment: %w", err)
		}
	}
	return nil
}

// removeUnnamed removes checkpoints, deltas and temp files in DATA/snap that
// the manifest does not name and no lease pins.
func (s *Store) removeUnnamed(m *manifest.Manifest, pinned map[string]bool) ([]string, error) {
	names, err := s.fs.List(s.snapDir())
	if err != nil {
		return nil, nil // no snap directory yet
	}
	keep := map[string]bool{}
	if m.Base != nil {
		keep[m.Base.Name] = true
	}
	for _, d := range m.Deltas {
		keep[d.Name] = true
	}
	var removed []string
	for _, name := range names {
		if keep[name] || pinned[name] || !isSnapFile(name) {
			continue
		}
		path := filepath.Join(s.snapDir(), name)
		if err := s.fs.Remove(path); err != nil {
			return removed, fmt.Errorf("remove %s: %w", path, err)
		}
		removed = append(removed, path)
	}
	if len(removed) > 0 {
		if err := s.fs.SyncDir(s.snapDir()); err != nil {
			return removed, fmt.Errorf("fsync %s: %w", s.snapDir(), err)
		}
	}
	return removed, nil
}

func isSnapFile(name string) bool {
	_, ckpt := format.ParseCheckpointName(name)
	_, _, dlt := format.ParseDeltaName(name)
	return ckpt || dlt || format.IsTempName(name)
}

func setKeys(set map[string]struct{}) []string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	return keys
}

// snapshotSource lets a Snapshot feed checkpoint.Write in key order.
type snapshotSource struct{ snap *Snapshot }

func (s snapshotSource) Ascend(fn func(key string, value []byte) bool) {
	s.snap.Scan(ScanOptions{}, fn)
}

func (s *Store) term() uint64 {
	if s.log == nil {
		return 1
	}
	return s.log.Term()
}

func deltaBytes(m *manifest.Manifest) int64 {
	n := int64(0)
	for _, d := range m.Deltas {
		n += d.Size
	}
	return n
}
