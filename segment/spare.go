package segment

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// The next segment is prepared ahead of time, in the background: a spare
// file created under a temporary name, preallocated to the segment size and
// synced. A rotation only writes its header, renames it and syncs the
// directory, so it never waits for an allocation, and a full disk shows up
// when the spare is prepared, long before a rotation needs it. Until a
// spare exists, Enqueue takes only the records that fit in the active
// segment's preallocated space (which needs no new disk space), and fails
// the others with ErrNoSpace; the worker retries, and writes resume by
// themselves once the spare exists.

// spareBase names spare files: format.TempName(spareBase, nonce), so Open
// removes any a stopped process left.
const spareBase = "next.wal"

// Retry delays of a spare preparation that failed.
const (
	spareRetryMin = 20 * time.Millisecond
	spareRetryMax = 2 * time.Second
)

// spareFile is a segment file prepared ahead of time.
type spareFile struct {
	f    vfs.File
	path string // its temporary path
	size int64  // bytes preallocated
}

// prepareSpare creates a spare in dir preallocated to size bytes and syncs
// it. On failure it leaves nothing behind.
func prepareSpare(fsys vfs.FS, dir string, size int64) (*spareFile, error) {
	tmp := filepath.Join(dir, format.TempName(spareBase, rand.Uint64()))
	f, err := fsys.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	err = f.Preallocate(size)
	if err == nil { // written once, so a rotation's header write changes no allocation and syncs fast
		_, err = f.WriteAt(make([]byte, min(size, 4096)), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		fsys.Remove(tmp)
		return nil, fmt.Errorf("preallocate %s to %d bytes: %w", tmp, size, err)
	}
	return &spareFile{f: f, path: tmp, size: size}, nil
}

// publish makes the spare the segment with header h in dir, durably: the
// header and the segment info record are written and synced, the file is
// renamed to its segment name and the directory synced. The segment holds
// no entry yet.
func (sp *spareFile) publish(fsys vfs.FS, dir string, h segHeader) (*activeSeg, error) {
	hdr, sum := h.encode()
	hdr = appendMarker(hdr, format.FrameWALSegInfo, uint64(sp.size))
	if _, err := sp.f.WriteAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("write header of %s: %w", sp.path, err)
	}
	if err := sp.f.Sync(); err != nil {
		return nil, fmt.Errorf("fsync %s: %w", sp.path, err)
	}
	path := filepath.Join(dir, format.SegmentName(h.first))
	if err := fsys.Rename(sp.path, path); err != nil {
		return nil, fmt.Errorf("rename %s to %s: %w", sp.path, path, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	// Reopened under its name, so that the file system's own errors name
	// the segment rather than a temporary file.
	f, err := fsys.OpenReadWrite(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	sp.f.Close()
	sp.f = f
	return &activeSeg{f: f, path: path, first: h.first, sum: sum, off: int64(len(hdr))}, nil
}

// discard closes and removes an unused spare.
func (sp *spareFile) discard(fsys vfs.FS) {
	sp.f.Close()
	fsys.Remove(sp.path)
}

// createSegment creates the segment with header h in dir, preallocated to
// size, durably (prepareSpare, then publish). A segment file never exists
// without a whole header.
func createSegment(fsys vfs.FS, dir string, h segHeader, size int64) (*activeSeg, error) {
	sp, err := prepareSpare(fsys, dir, max(size, headerSize+markerSize))
	if err != nil {
		return nil, err
	}
	a, err := sp.publish(fsys, dir, h)
	if err != nil {
		sp.discard(fsys)
		return nil, err
	}
	return a, nil
}

// noSpace says whether err is a file system out of space (or quota).
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// spareError is the error writes get while no spare can be prepared:
// ErrNoSpace for a full disk, naming the directory and the bytes needed.
func (l *Log) spareError(err error) error {
	if noSpace(err) {
		return fmt.Errorf("%w: %s needs %d free bytes for the next segment (free some space: writes resume by themselves): %w",
			ErrNoSpace, l.dir, l.segSize, err)
	}
	return fmt.Errorf("kvtool/segment: cannot prepare the next segment in %s (retrying): %w", l.dir, err)
}

// spareWorker trims sealed segments and prepares a spare whenever there is
// none, when poked (after a rotation took the spare, or by a write that
// needs one) or when the retry delay after a failure has passed. It stops
// when quit is closed, after the last trims.
func (l *Log) spareWorker() {
	defer close(l.workDone)
	backoff := spareRetryMin
	var retry <-chan time.Time
	for {
		select {
		case <-l.work:
			l.trim()
			if retry != nil {
				continue // a failed attempt waits out its delay
			}
		case <-retry:
			retry = nil
		case <-l.quit:
			l.trim()
			return
		}
		if !l.startPreparing() {
			continue
		}
		sp, err := prepareSpare(l.fs, l.dir, l.segSize)
		l.donePreparing(sp, err)
		if err != nil {
			retry = time.After(backoff)
			backoff = min(2*backoff, spareRetryMax)
		} else {
			backoff = spareRetryMin
		}
	}
}

// startPreparing reports whether a spare is wanted, and marks one as being
// prepared.
func (l *Log) startPreparing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ready != nil || l.preparing || l.closed || !l.spareDue() {
		return false
	}
	l.preparing, l.wantSpare = true, false
	return true
}

// spareDue reports whether the next segment should be prepared now: at
// once, unless the log is lazy (Options.LazySpare), then once the active
// segment is half full or a record waits for it. l.mu is held.
func (l *Log) spareDue() bool {
	return !l.lazy || l.wantSpare || l.activeOff >= l.segSize/2
}

// donePreparing records the outcome of a preparation and wakes the writers
// waiting for it.
func (l *Log) donePreparing(sp *spareFile, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.preparing = false
	if err != nil {
		l.spareErr = l.spareError(err)
		l.wantSpare = l.lazy // a lazy log retries too
	} else {
		l.spareErr = nil
		l.ready = sp
	}
	l.space.Broadcast()
}

// trim trims the segments sealed since the last call to their data and
// closes them. That is only about space (a sealed segment may keep its
// preallocated zeros, as a crash can leave it), so it is not synced and a
// failure is not an error.
func (l *Log) trim() {
	l.mu.Lock()
	segs := l.trims
	l.trims = nil
	l.mu.Unlock()
	for _, a := range segs {
		_ = a.f.Truncate(a.off)
		_ = a.f.Close()
	}
}

// poke wakes the worker.
func (l *Log) poke() {
	select {
	case l.work <- struct{}{}:
	default:
	}
}

// takeSpare hands the flusher the spare for a rotation and has the worker
// prepare the next one. With none ready (a Rotate right after another one)
// it prepares one itself; that error does not wrap ErrFailed: nothing was
// written.
func (l *Log) takeSpare() (*spareFile, error) {
	l.mu.Lock()
	sp := l.ready
	l.ready = nil
	l.mu.Unlock()
	defer l.poke()
	if sp != nil {
		return sp, nil
	}
	sp, err := prepareSpare(l.fs, l.dir, l.segSize)
	if err != nil {
		return nil, l.spareError(err)
	}
	return sp, nil
}

// admit decides whether a record of size bytes may be enqueued now; l.mu
// is held. Every record admitted must be writable without a disk
// allocation that can fail: all the records queued fit in the active
// segment's free space, or they need exactly one rotation into a new
// segment and a spare is ready for it. It returns false to wait (for the
// flusher to drain the queue, or for the worker to prepare a spare), or
// the error to fail the record with when no spare can be prepared.
func (l *Log) admit(size int64) (bool, error) {
	switch {
	case len(l.buf) > 0 && len(l.buf)+int(size) > l.maxBatch:
		return false, nil // backpressure: a full batch is waiting
	case l.activeRecs == 0 && l.queued == 0, l.activeOff+l.queued+size+trailerSize <= l.segSize:
		return true, nil // fits in the active segment (or is its first record)
	case l.queued > 0 && l.queued+size > l.capacity():
		return false, nil // would need a second rotation: wait for the flusher
	case l.ready != nil:
		return true, nil
	case l.preparing:
		return false, nil
	case l.spareErr != nil:
		return false, l.spareErr
	}
	l.wantSpare = true
	l.poke()
	return false, nil
}

// capacity is the room a new segment has for records.
func (l *Log) capacity() int64 {
	return max(l.segSize-headerSize-markerSize-trailerSize, 1)
}
