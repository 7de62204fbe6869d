package segment

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/testfault"
)

// flushLoop is the one flusher goroutine. Each round it takes the whole
// current batch (swapping in the spare buffer, so appenders keep filling
// while it writes), writes it with one WriteAt, syncs once, publishes the
// durable index, calls OnDurable and releases the batch's waiters.
func (l *Log) flushLoop() {
	defer close(l.stopped)
	for range l.wake {
		for {
			// pace and gather read l.fl too: under flushMu (a Flush
			// meanwhile waits for them; a log with CallerFlush wants
			// neither, see Options).
			l.flushMu.Lock()
			l.pace()
			l.gather()
			b, data, closing := l.take()
			if b == nil {
				if closing {
					l.fl.closeRec = l.writeClose()
				}
				l.flushMu.Unlock()
				if closing {
					return
				}
				break
			}
			l.flush(b, data)
			l.flushMu.Unlock()
			if l.callerFl && !closing {
				// One batch per wake: what its appender handed over
				// (Wake, a full batch, Rotate). Records enqueued since
				// are the appender's to write (Flush); taking them here
				// would make it wait for this goroutine after all. A
				// Close during the flush left its wake in the channel.
				break
			}
		}
	}
}

// Flush writes and syncs, on the caller's goroutine, the records enqueued
// that the flusher has not taken yet, and returns once every record
// enqueued before the call is durable: nil, or the log's failure (after
// Close, with nothing left to write, nil). A batch the flusher is writing
// is waited for. See Options.CallerFlush.
func (l *Log) Flush() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if b, data, _ := l.take(); b != nil {
		l.flush(b, data)
		if b.err != nil {
			return b.err
		}
	}
	return l.Err()
}

// Wake has the flusher goroutine write and sync what is enqueued, for a
// log with Options.CallerFlush whose appender has other work meanwhile.
func (l *Log) Wake() { l.signal() }

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
	if l.fl.expect <= 1 || l.noGather {
		return
	}
	limit := l.fl.syncEWMA / 2
	if limit <= 0 {
		return
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	l.fl.gathers++
	for {
		l.mu.Lock()
		l.gathering = l.cur.n < l.fl.expect && l.failed == nil && !l.closed && !l.cur.rotate &&
			len(l.buf) < l.maxBatch/2
		l.gatherFor = l.fl.expect
		gathering := l.gathering
		l.mu.Unlock()
		if !gathering {
			return
		}
		select {
		case <-l.grew:
			l.fl.gatherWakes++
		case <-timer.C:
			l.mu.Lock()
			l.gathering = false
			l.mu.Unlock()
			return
		}
	}
}

// pace holds the next batch, for a log with a SyncInterval, until the
// interval has passed since the last batch's write began, unless the
// batch has grown past half the batch limit, an appender waits for
// space, a rotation or a hurry was asked for, or the log closes or failed.
func (l *Log) pace() {
	if l.interval <= 0 {
		return
	}
	wait := l.interval - time.Since(l.fl.lastFlush)
	if wait <= 0 {
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		l.mu.Lock()
		l.gathering = l.failed == nil && !l.closed && !l.cur.rotate && !l.cur.hurry && l.waiting == 0 && len(l.buf) < l.maxBatch/2
		l.gatherFor = math.MaxInt64 // no record count ends a pace: only the size, space or the interval
		pacing := l.gathering
		l.mu.Unlock()
		if !pacing {
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
// nothing to do, and whether the log is closing (Close was called).
func (l *Log) take() (*batch, []byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil || (len(l.buf) == 0 && !l.cur.rotate) {
		return nil, nil, l.closed
	}
	b, data := l.cur, l.buf
	l.cur, l.buf, l.fl.spareBuf = newBatch(), l.fl.spareBuf[:0], nil
	if l.waiting > 0 {
		l.space.Broadcast()
	}
	return b, data, l.closed
}

// flush makes batch b (encoded in data) durable and releases its waiters.
func (l *Log) flush(b *batch, data []byte) {
	if testfault.WALAckBeforeWrite.Load() {
		if b, data = l.ackBeforeWrite(b, data); b == nil {
			return
		}
	}
	l.fl.lastFlush = time.Now()
	if err := l.write(b, data); err != nil {
		l.fail(err, b)
		return
	}
	if b.rotate {
		if err := l.rotateTo(b.skipTo); errors.Is(err, ErrFailed) {
			l.fail(err, b)
			return
		} else if err != nil {
			b.rotErr = err // no spare: nothing was written, the log goes on
		}
	}
	l.fl.expect = b.n
	if b.n > 0 {
		l.durable.Store(b.last)
		if l.onDurable != nil {
			l.onDurable(b.last)
		}
	}
	close(b.done)
	if cap(data) <= 2*l.maxBatch {
		l.fl.spareBuf = data[:0] // keep it for the next swap, unless one huge record grew it
	}
}

// write appends the batch to the active segment, rotating first if it would
// leave no room for the segment's trailer (a batch is never split across
// segments), and syncs.
func (l *Log) write(b *batch, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	a := l.fl.active
	if a.records > 0 && a.off+int64(len(data))+trailerSize > l.segSize {
		if err := l.rotate(); err != nil {
			// admit made sure a spare was ready: not having one now is a bug,
			// and the records queued cannot be written.
			return failure(err)
		}
		a = l.fl.active
	}
	t0 := time.Now()
	if _, err := a.f.WriteAt(data, a.off); err != nil {
		return fmt.Errorf("%w: write %s at offset %d: %w", ErrFailed, a.path, a.off, err)
	}
	t1 := time.Now()
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("%w: fsync %s: %w", ErrFailed, a.path, err)
	}
	l.fl.syncEWMA += (time.Since(t1) - l.fl.syncEWMA) / 8
	if l.onSync != nil {
		l.onSync(SyncStats{Records: int(b.n), Bytes: len(data), Write: t1.Sub(t0), Sync: time.Since(t1)})
	}
	start := a.off
	a.off += int64(len(data))
	a.records += b.n
	l.fl.endsClosed = false
	l.segMu.Lock()
	seg := &l.segs[len(l.segs)-1]
	if b.n > 0 {
		seg.addMark(b.last-uint64(b.n)+1, start) // the batch's data starts with its first record
	}
	m := &seg.info
	m.LastIndex, m.Records, m.Size = b.last, a.records, a.off
	l.segMu.Unlock()
	l.wrote(int64(len(data)))
	return nil
}

// wrote tells admit that n queued bytes are written and where the active
// segment stands.
func (l *Log) wrote(n int64) {
	l.mu.Lock()
	l.queued -= n
	l.activeOff, l.activeRecs = l.fl.active.off, l.fl.active.records
	if l.waiting > 0 {
		l.space.Broadcast()
	}
	half := l.lazy && l.ready == nil && !l.preparing && l.spareDue()
	l.mu.Unlock()
	if half {
		l.poke() // the lazy spare is due
	}
}

// failure wraps err in ErrFailed unless it already is.
func failure(err error) error {
	if errors.Is(err, ErrFailed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrFailed, err)
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

// rotate seals the active segment and makes a new one active, in the order
// that keeps a lost end of the log visible:
//
//  1. the next segment (the spare) is published durably, still empty:
//     header and segment info record synced, renamed, directory synced;
//  2. the old segment gets a seal record naming the new one's first index,
//     and is synced;
//  3. only then do entries go into the new segment.
//
// So a newest segment holding entries always follows a sealed one, and if
// it goes missing, the seal names it: a gap. A crash between 1 and 2
// leaves an empty newest segment after an unsealed one (or one with a torn
// seal), which Open removes; nothing is lost (see tailFrom). The sealed
// segment is then trimmed to its data, which is only about space.
//
// An error wrapping ErrFailed stops the log. Any other (no spare could be
// prepared) means nothing was written and the active segment is unchanged.
func (l *Log) rotate() error { return l.rotateTo(0) }

// rotateTo is rotate, or with skipTo past the next index the restart of
// the log there (SkipTo).
func (l *Log) rotateTo(skipTo uint64) error {
	old := l.fl.active
	next := old.first + uint64(old.records)
	if skipTo > next {
		return l.restartAt(skipTo) // skip.go
	} else if old.records == 0 {
		return nil // a new segment would have the same name
	}
	sp, err := l.takeSpare()
	if err != nil {
		return err
	}
	h := segHeader{storeID: l.storeID, first: next, term: l.term, prevFirst: old.first, prevSum: old.sum}
	ns, err := sp.publish(l.fs, l.dir, h)
	if err != nil {
		sp.f.Close()
		return fmt.Errorf("%w: %w", ErrFailed, err)
	}
	if err := seal(old, next); err != nil {
		ns.f.Close()
		return err
	}
	l.mu.Lock()
	l.trims = append(l.trims, old) // the worker trims and closes it
	l.mu.Unlock()
	l.poke()
	l.fl.active, l.fl.endsClosed = ns, false
	l.segMu.Lock()
	l.segs[len(l.segs)-1].info.Size = old.off
	l.segs = append(l.segs, segMeta{info: ns.info(h.term), sum: ns.sum})
	l.segGen.Add(1) // before any entry of ns is durable
	l.segMu.Unlock()
	l.wrote(0)
	return nil
}

// seal writes the seal record naming next at the end of a's data and syncs
// it. The segment is trimmed and closed later, by the worker.
func seal(a *activeSeg, next uint64) error {
	rec := appendMarker(nil, format.FrameWALSeal, next)
	if _, err := a.f.WriteAt(rec, a.off); err != nil {
		return fmt.Errorf("%w: write the seal record of %s at offset %d: %w", ErrFailed, a.path, a.off, err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("%w: fsync %s: %w", ErrFailed, a.path, err)
	}
	a.off += int64(len(rec))
	return nil
}

// writeClose writes and syncs the clean-shutdown record at the end of the
// active segment's data, naming the log's last index, unless the log
// failed. The flusher calls it last, with nothing left to write.
func (l *Log) writeClose() error {
	if l.Err() != nil || l.fl.endsClosed {
		return nil
	}
	a := l.fl.active
	rec := appendMarker(nil, format.FrameWALClose, a.first+uint64(a.records)-1)
	if _, err := a.f.WriteAt(rec, a.off); err != nil {
		return fmt.Errorf("kvtool/segment: write the clean-shutdown record of %s at offset %d: %w", a.path, a.off, err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("kvtool/segment: fsync %s: %w", a.path, err)
	}
	a.off += int64(len(rec))
	l.fl.endsClosed = true
	l.segMu.Lock()
	l.segs[len(l.segs)-1].info.Size = a.off
	l.segMu.Unlock()
	return nil
}

func (a *activeSeg) info(term uint64) SegmentInfo {
	return SegmentInfo{
		Name: filepath.Base(a.path), Path: a.path, FirstIndex: a.first,
		LastIndex: a.first + uint64(a.records) - 1, Records: a.records, Size: a.off, Term: term,
	}
}
