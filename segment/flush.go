package segment

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/testfault"
	"github.com/kvtool/kvtool/vfs"
)

// flushLoop is the one flusher goroutine. Each round it takes the whole
// current batch (swapping in the spare buffer, so appenders keep filling
// while it writes), writes it with one WriteAt, syncs once, publishes the
// durable index, calls OnDurable and releases the batch's waiters.
func (l *Log) flushLoop() {
	defer close(l.stopped)
	for range l.wake {
		for {
			l.gather()
			b, data, closing := l.take()
			if b == nil {
				if closing {
					return
				}
				break
			}
			l.flush(b, data)
		}
	}
}

// gather waits, before the flusher takes the next batch, for the records
// the waiters it just released are about to append — the adaptive form of
// PostgreSQL's commit_delay/commit_siblings. After a flush released a
// cohort of n waiters, callers that commit in a loop come straight back;
// if the flusher took the buffer at once it would catch only the quickest
// few, and everyone else would wait a whole extra fsync. So it waits until
// the buffer holds n records, but never longer than half the recent fsync
// time, which bounds what a caller that does not come back can cost. A lone
// appender (n = 1) never waits: its own record satisfies it.
func (l *Log) gather() {
	if l.expect <= 1 {
		return
	}
	limit := l.syncEWMA / 2
	if limit <= 0 {
		return
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		l.mu.Lock()
		l.gathering = l.cur.n < l.expect && l.failed == nil && !l.closed && !l.cur.rotate &&
			len(l.buf) < l.maxBatch/2
		gathering := l.gathering
		l.mu.Unlock()
		if !gathering {
			return
		}
		select {
		case <-l.grew:
		case <-timer.C:
			l.mu.Lock()
			l.gathering = false
			l.mu.Unlock()
			return
		}
	}
}

// take swaps out the current batch. It returns a nil batch when there is
// nothing to do, and whether the log is closing.
func (l *Log) take() (*batch, []byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil || (len(l.buf) == 0 && !l.cur.rotate) {
		return nil, nil, l.closed
	}
	b, data := l.cur, l.buf
	l.cur, l.buf, l.spare = newBatch(), l.spare[:0], nil
	if l.waiting > 0 {
		l.space.Broadcast()
	}
	return b, data, false
}

// flush makes batch b (encoded in data) durable and releases its waiters.
func (l *Log) flush(b *batch, data []byte) {
	if testfault.WALAckBeforeWrite.Load() {
		if b, data = l.ackBeforeWrite(b, data); b == nil {
			return
		}
	}
	err := l.write(b, data)
	if err == nil && b.rotate {
		err = l.rotate()
	}
	if err != nil {
		l.fail(err, b)
		return
	}
	l.expect = b.n
	if b.n > 0 {
		l.durable.Store(b.last)
		if l.onDurable != nil {
			l.onDurable(b.last)
		}
	}
	close(b.done)
	if cap(data) <= 2*l.maxBatch {
		l.spare = data[:0] // keep it for the next swap, unless one huge record grew it
	}
}

// write appends the batch to the active segment, rotating first if it would
// pass the size limit (a batch is never split across segments), and syncs.
func (l *Log) write(b *batch, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	a := l.active
	if a.records > 0 && a.off+int64(len(data)) > l.segSize {
		if err := l.rotate(); err != nil {
			return err
		}
		a = l.active
	}
	t0 := time.Now()
	if _, err := a.f.WriteAt(data, a.off); err != nil {
		return fmt.Errorf("%w: write %s at offset %d: %w", ErrFailed, a.path, a.off, err)
	}
	t1 := time.Now()
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("%w: fsync %s: %w", ErrFailed, a.path, err)
	}
	l.syncEWMA += (time.Since(t1) - l.syncEWMA) / 8
	if l.onSync != nil {
		l.onSync(SyncStats{Records: int(b.n), Bytes: len(data), Write: t1.Sub(t0), Sync: time.Since(t1)})
	}
	a.off += int64(len(data))
	a.records += b.n
	l.segMu.Lock()
	m := &l.segs[len(l.segs)-1].info
	m.LastIndex, m.Records, m.Size = b.last, a.records, a.off
	l.segMu.Unlock()
	return nil
}

// fail puts the log in the failed state after a write, fsync or rotation
// error. This is the fsyncgate rule: after a failed fsync the kernel may
// have dropped the dirty pages and cleared the error, so a retried fsync
// could "succeed" without the data. So the sync is never retried, batch b
// and every batch after it fail, and nothing later is ever acknowledged.
func (l *Log) fail(err error, b *batch) {
	l.mu.Lock()
	l.failed = err
	cur := l.cur
	l.buf = l.buf[:0]
	l.space.Broadcast()
	l.mu.Unlock()
	b.err = err
	close(b.done)
	if cur != b {
		cur.err = err
		close(cur.done)
	}
}

// rotate seals the active segment and makes a new one active. The new
// segment is durable (file and directory entry) before any record goes into
// it. Sealing truncates the old segment's unused preallocated space; that is
// only about space, so a crash before it is harmless (the tail reads as
// zeros).
func (l *Log) rotate() error {
	old := l.active
	if old.records == 0 {
		return nil // a new segment would have the same name
	}
	last := old.first + uint64(old.records) - 1
	h := segHeader{storeID: l.storeID, first: last + 1, term: l.term, prevFirst: old.first, prevSum: old.sum}
	ns, err := createSegment(l.fs, l.dir, h, l.segSize)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFailed, err)
	}
	l.active = ns
	l.segMu.Lock()
	l.segs = append(l.segs, segMeta{info: ns.info(h.term), sum: ns.sum})
	l.segMu.Unlock()
	return seal(old)
}

// seal trims a full segment to its data and closes it.
func seal(a *activeSeg) error {
	err := a.f.Truncate(a.off)
	if err == nil {
		err = a.f.Sync()
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: seal %s: %w", ErrFailed, a.path, err)
	}
	return nil
}

func (a *activeSeg) info(term uint64) SegmentInfo {
	return SegmentInfo{
		Name: filepath.Base(a.path), Path: a.path, FirstIndex: a.first,
		LastIndex: a.first + uint64(a.records) - 1, Records: a.records, Size: a.off, Term: term,
	}
}

// createSegment creates the segment with header h in dir, preallocated to
// size, and publishes it durably: it is written under a temporary name,
// preallocated, given its header and synced, then renamed and the directory
// synced. So a segment file never exists without a whole header.
func createSegment(fsys vfs.FS, dir string, h segHeader, size int64) (*activeSeg, error) {
	name := format.SegmentName(h.first)
	path := filepath.Join(dir, name)
	tmp := filepath.Join(dir, format.TempName(name, rand.Uint64()))
	f, err := fsys.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	hdr, sum := h.encode()
	if err := prepareSegment(f, tmp, hdr, size); err != nil {
		f.Close()
		fsys.Remove(tmp)
		return nil, err
	}
	if err := fsys.Rename(tmp, path); err != nil {
		f.Close()
		fsys.Remove(tmp)
		return nil, fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return &activeSeg{f: f, path: path, first: h.first, sum: sum, off: int64(len(hdr))}, nil
}

func prepareSegment(f vfs.File, path string, hdr []byte, size int64) error {
	if err := f.Preallocate(max(size, int64(len(hdr)))); err != nil {
		return fmt.Errorf("preallocate %s: %w", path, err)
	}
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("write header of %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}
