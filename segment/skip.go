package segment

import (
	"fmt"
	"path/filepath"
)

// SkipTo makes next the index of the log's next record, leaving out every
// index between the last record and next, and returns once that is
// durable. It is for a replica whose whole state was replaced by a
// snapshot at next-1 (a cluster member installing a raft snapshot), after
// the caller made that state durable elsewhere: every segment is removed
// (oldest first, the directory synced after each, so a crash leaves a
// contiguous suffix of the old log or none) and a new segment starts at
// next, linked to nothing, as a new log's first segment. An Open after a
// crash in between finds the old log's suffix, or an empty directory
// (then its Options.FirstIndex says where the log starts): the caller
// calls SkipTo again when the log ends before next-1. The caller must not
// enqueue records while SkipTo runs.
func (l *Log) SkipTo(next uint64) error {
	l.mu.Lock()
	if err := l.stateErr(); err != nil {
		l.mu.Unlock()
		return err
	}
	if next <= l.next {
		cur := l.next
		l.mu.Unlock()
		return fmt.Errorf("kvtool/segment: skip %s to index %d: the log's next index is already %d", l.dir, next, cur)
	}
	b := l.cur
	b.rotate, b.skipTo = true, next
	l.mu.Unlock()
	l.interrupt()
	<-b.done
	if b.err != nil {
		return b.err
	}
	if b.rotErr != nil {
		return b.rotErr
	}
	l.mu.Lock()
	l.next = next
	l.last.Store(next - 1)
	l.durable.Store(next - 1)
	l.mu.Unlock()
	return nil
}

// restartAt is SkipTo's work on the flusher: remove every segment, then
// publish a new one at next. An error wraps ErrFailed: the log may be
// left without an active segment.
func (l *Log) restartAt(next uint64) error {
	sp, err := l.takeSpare()
	if err != nil {
		return err
	}
	l.dropMu.Lock()
	defer l.dropMu.Unlock()
	l.mu.Lock()
	trims := l.trims
	l.trims = nil
	l.mu.Unlock()
	for _, a := range trims {
		_ = a.f.Close()
	}
	_ = l.fl.active.f.Close()
	l.segMu.Lock()
	segs := append([]segMeta(nil), l.segs...)
	l.segMu.Unlock()
	for _, m := range segs {
		if err := l.fs.Remove(m.info.Path); err != nil {
			sp.f.Close()
			return fmt.Errorf("%w: remove %s to skip the log to %d: %w", ErrFailed, m.info.Path, next, err)
		}
		if err := l.fs.SyncDir(l.dir); err != nil {
			sp.f.Close()
			return fmt.Errorf("%w: fsync directory %s: %w", ErrFailed, filepath.Clean(l.dir), err)
		}
	}
	h := segHeader{storeID: l.storeID, first: next, term: l.term}
	ns, err := sp.publish(l.fs, l.dir, h)
	if err != nil {
		sp.f.Close()
		return fmt.Errorf("%w: %w", ErrFailed, err)
	}
	l.fl.active, l.fl.endsClosed = ns, false
	l.segMu.Lock()
	l.segs = []segMeta{{info: ns.info(h.term), sum: ns.sum}}
	l.segMu.Unlock()
	l.wrote(0)
	return nil
}
