package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/cespare/xxhash/v2"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// This file serves a log whose indexes and terms are decided elsewhere: a
// cluster node's raft log, where the leader assigns both and a new leader
// may replace a suffix a follower holds.

// ErrNotNext is returned (wrapped) by EnqueueAt for a record that does not
// directly follow the log, or whose term is below the log's term.
var ErrNotNext = errors.New("kvtool/segment: record does not follow the log")

// EnqueueAt is Enqueue for a record whose index and term the caller assigns:
// index must be the log's next index (LastIndex()+1) and term at least the
// log's term (Term(); a segment created later is headed with it). Keeping
// terms non-decreasing from record to record is the caller's duty, as
// readers reject a record whose term is below the one before it.
func (l *Log) EnqueueAt(index, term uint64, t format.FrameType, data []byte) (*Pending, error) {
	size, err := recordSize(t, data)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	for l.failed == nil && !l.closed && len(l.buf) > 0 && int64(len(l.buf))+size > int64(l.maxBatch) {
		l.signal() // a full batch waits (with CallerFlush nothing else woke the flusher)
		l.waiting++
		l.space.Wait()
		l.waiting--
	}
	if err := l.checkNextLocked(index, term); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	return l.pending(l.addLocked(t, index, term, data, size), index), nil
}

// EnqueueBatchAt is EnqueueAt for consecutive records (a raft Ready's
// entries): under one hold of the log's lock they are checked and copied
// into the current batch, and the flusher is woken once, after the last,
// so that they share one write and one fsync. One at a time, the first
// record woke the flusher, which could take the buffer before the rest
// were in and split them over two fsyncs, the second waiting for the
// first. Only records beyond the batch limit go in a later batch (the
// call then waits for the flusher to make room, as EnqueueAt does). It
// returns the Pending of the last record (Wait on it for all of them),
// nil for none. On an error the records before the failing one stay
// enqueued; an error of the log's state (ErrClosed, ErrFailed) means none
// of them will be durable.
func (l *Log) EnqueueBatchAt(recs []Entry) (*Pending, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	sizes := make([]int64, len(recs))
	for i, r := range recs {
		size, err := recordSize(r.Type, r.Data)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", r.Index, err)
		}
		sizes[i] = size
	}
	l.mu.Lock()
	var b *batch
	wake := false
	for i, r := range recs {
		for l.failed == nil && !l.closed && len(l.buf) > 0 && int64(len(l.buf))+sizes[i] > int64(l.maxBatch) {
			l.signal() // what is in is a full batch: let the flusher take it now
			wake = false
			l.waiting++
			l.space.Wait()
			l.waiting--
		}
		if err := l.checkNextLocked(r.Index, r.Term); err != nil {
			l.mu.Unlock()
			if wake {
				l.signal()
			}
			return nil, err
		}
		wake = wake || len(l.buf) == 0
		b = l.encodeLocked(r.Type, r.Index, r.Term, r.Data, sizes[i])
	}
	l.unlockAdded(b, wake)
	return l.pending(b, recs[len(recs)-1].Index), nil
}

// checkNextLocked returns why a record of index and term cannot be
// appended now (the log's state, or ErrNotNext), or nil. l.mu is held.
func (l *Log) checkNextLocked(index, term uint64) error {
	if err := l.stateErr(); err != nil {
		return err
	}
	if index != l.next || term < l.term {
		return fmt.Errorf("%w: record %d (term %d) after %s, whose next index is %d (term at least %d)",
			ErrNotNext, index, term, l.dir, l.next, l.term)
	}
	return nil
}

// Truncation is what TruncateAfter removed.
type Truncation struct {
	Removed []string // segments removed whole, newest first
	Path    string   // the segment cut short ("" if none was)
	Offset  int64    // where it was cut: the offset of record Last+1
	Last    uint64   // the log's last index after the cut
	OldLast uint64   // the log's last index before the cut
}

// TruncateAfter durably removes every record after index last from the log
// in dir, which no Log may have open (close it, truncate, open it again).
// It is how a raft follower drops the suffix a new leader replaces; the cut
// records were never committed, so they are not quarantined.
//
// Segments wholly after last are removed newest first, each removal
// followed by an fsync of the directory; then the segment holding record
// last+1 is truncated at that record and synced. A crash at any point
// leaves a prefix of the old log, never a gap or a mix with records
// appended after the cut (those are appended only once this returns). The
// cut segment keeps its size: the bytes after the cut are zeros.
//
// Removing a sealed segment's successor, or cutting a segment that newer
// ones follow, leaves a state that reads as lost log (a seal naming a
// missing segment, an index gap). So the cut is first recorded durably in
// an intent file, TruncateMarkerName, which Open finds after a crash and
// finishes the cut from, before it reads the log; the intent goes once the
// cut is durable.
func TruncateAfter(fsys vfs.FS, dir string, last uint64) (Truncation, error) {
	if err := writeTruncateIntent(fsys, dir, last); err != nil {
		return Truncation{Last: last, OldLast: last}, err
	}
	tr, err := truncateAfter(fsys, dir, last)
	if err != nil {
		return tr, err
	}
	return tr, removeTruncateIntent(fsys, dir)
}

// TruncateMarkerName is the intent file of an unfinished TruncateAfter in
// a WAL directory: 8 bytes of the last index to keep and an xxh64 of them,
// both little-endian. Its bytes are part of the format.
const TruncateMarkerName = "TRUNCATE"

// truncateIntentSize is the size of a truncate intent file.
const truncateIntentSize = 16

// appendTruncateIntent appends the bytes of the intent to keep index last.
func appendTruncateIntent(dst []byte, last uint64) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, last)
	return binary.LittleEndian.AppendUint64(dst, xxhash.Sum64(dst[len(dst)-8:]))
}

// parseTruncateIntent decodes the intent file at path, whose bytes are b
// (read up to one byte past truncateIntentSize). Damage is a
// *format.CorruptionError.
func parseTruncateIntent(b []byte, path string) (uint64, error) {
	if len(b) != truncateIntentSize {
		return 0, format.Corruptf(path, int64(min(len(b), truncateIntentSize)), "a truncate intent of %d bytes, want %d", len(b), truncateIntentSize)
	}
	if xxhash.Sum64(b[:8]) != binary.LittleEndian.Uint64(b[8:]) {
		return 0, format.Corruptf(path, 8, "truncate intent checksum mismatch")
	}
	return binary.LittleEndian.Uint64(b), nil
}

// ReadTruncateIntent reads the intent an interrupted TruncateAfter left in
// the WAL directory dir: the last index the cut keeps, and whether there
// is one. Open finishes such a cut before it reads the log. A damaged
// intent is a *format.CorruptionError, and Open then refuses the log.
func ReadTruncateIntent(fsys vfs.FS, dir string) (last uint64, ok bool, err error) {
	path := filepath.Join(dir, TruncateMarkerName)
	f, err := fsys.Open(path)
	if vfs.IsNotExist(err) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, fmt.Errorf("kvtool/segment: open %s: %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, truncateIntentSize+1))
	f.Close()
	if err != nil {
		return 0, false, fmt.Errorf("kvtool/segment: read %s: %w", path, err)
	}
	last, err = parseTruncateIntent(b, path)
	return last, err == nil, err
}

func writeTruncateIntent(fsys vfs.FS, dir string, last uint64) error {
	f, err := format.CreateAtomic(fsys, filepath.Join(dir, TruncateMarkerName))
	if err != nil {
		return fmt.Errorf("kvtool/segment: truncate intent: %w", err)
	}
	if _, err := f.Write(appendTruncateIntent(nil, last)); err != nil {
		f.Cancel()
		return fmt.Errorf("kvtool/segment: truncate intent: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("kvtool/segment: truncate intent: %w", err)
	}
	return nil
}

func removeTruncateIntent(fsys vfs.FS, dir string) error {
	if err := fsys.Remove(filepath.Join(dir, TruncateMarkerName)); err != nil {
		return fmt.Errorf("kvtool/segment: remove truncate intent: %w", err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("kvtool/segment: fsync %s: %w", dir, err)
	}
	return nil
}

// finishTruncate completes a TruncateAfter that a crash interrupted, if
// dir holds its intent. Open calls it before it reads the log.
func finishTruncate(fsys vfs.FS, dir string) error {
	last, ok, err := ReadTruncateIntent(fsys, dir)
	if err != nil || !ok {
		return err
	}
	if _, err := truncateAfter(fsys, dir, last); err != nil {
		return err
	}
	return removeTruncateIntent(fsys, dir)
}

func truncateAfter(fsys vfs.FS, dir string, last uint64) (Truncation, error) {
	tr := Truncation{Last: last, OldLast: last}
	names, err := walNames(fsys, dir)
	if err != nil {
		return tr, err
	}
	k := startSegment(names, last+1)
	if len(names) == 0 {
		return tr, fmt.Errorf("kvtool/segment: truncate %s after %d: no segments", dir, last)
	}
	if first, _ := format.ParseSegmentName(names[k]); first > last+1 {
		return tr, fmt.Errorf("kvtool/segment: truncate %s after %d: the log starts at %d (cutting below it would leave no log)", dir, last, first)
	}
	for i := len(names) - 1; i > k; i-- {
		if err := tr.removeSegment(fsys, dir, names[i]); err != nil {
			return tr, err
		}
	}
	return tr, tr.cutSegment(fsys, filepath.Join(dir, names[k]), names[k])
}

// removeSegment removes a segment wholly after the cut, noting its last
// index for OldLast.
func (tr *Truncation) removeSegment(fsys vfs.FS, dir, name string) error {
	path := filepath.Join(dir, name)
	if tr.OldLast == tr.Last {
		if last, err := lastIndexOf(fsys, path, name); err == nil {
			tr.OldLast = last
		}
	}
	if err := fsys.Remove(path); err != nil {
		return fmt.Errorf("kvtool/segment: truncate: remove %s: %w", path, err)
	}
	tr.Removed = append(tr.Removed, path)
	if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("kvtool/segment: truncate: fsync directory of %s: %w", path, err)
	}
	return nil
}

// cutSegment replaces the segment at path by a copy cut just before
// record tr.Last+1, if it holds it. The copy keeps the length the segment
// was preallocated to (zeros after the cut: never-written space, not a
// truncated file) and is published atomically (temp file, fsync, rename,
// fsync of the directory), so a crash leaves the old segment or the cut
// one, never a short file or a half-zeroed one.
func (tr *Truncation) cutSegment(fsys vfs.FS, path, name string) error {
	off, oldLast, prealloc, err := recordOffset(fsys, path, name, tr.Last+1)
	if err != nil || off < 0 {
		return err
	}
	tr.OldLast = max(tr.OldLast, oldLast)
	if err := publishCut(fsys, path, off, prealloc); err != nil {
		return fmt.Errorf("kvtool/segment: truncate %s at offset %d: %w", path, off, err)
	}
	tr.Path, tr.Offset = path, off
	return nil
}

// publishCut publishes over path the first off bytes of it, grown with
// zeros to at least size bytes (its preallocated length).
func publishCut(fsys vfs.FS, path string, off, size int64) error {
	src, err := fsys.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, tmp, err := format.CreateTemp(fsys, path, uint64(off))
	if err != nil {
		return err
	}
	defer dst.Close()
	if _, err = io.Copy(dst, io.NewSectionReader(src, 0, off)); err == nil {
		err = dst.Preallocate(max(size, off))
	}
	if err != nil {
		fsys.Remove(tmp)
		return err
	}
	return format.PublishFile(fsys, dst, tmp, path)
}

// recordOffset returns the offset of record idx in the segment at path
// (-1 if the segment ends before it) and the segment's last index. A
// damaged frame where record idx would start counts as its start: it is
// cut with the rest. Damage before it is an error.
func recordOffset(fsys vfs.FS, path, name string, idx uint64) (off int64, last uint64, prealloc int64, err error) {
	s, err := openSeg(fsys, path, name, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	defer s.close()
	for {
		e, err := s.next()
		switch {
		case err == io.EOF:
			return -1, s.last(), s.prealloc, nil
		case err != nil && s.expect == idx:
			return s.at, idx - 1, s.prealloc, nil
		case err != nil:
			return 0, 0, 0, fmt.Errorf("kvtool/segment: truncate after %d: %w", idx-1, err)
		case e.Index == idx:
			off := s.at
			last, _ := scanToEnd(s)
			return off, max(last, idx), s.prealloc, nil
		}
	}
}

// scanToEnd reads the rest of a segment and returns its last good index,
// and the damage that stopped it early, if any.
func scanToEnd(s *segReader) (uint64, error) {
	for {
		if _, err := s.next(); err == io.EOF {
			return s.last(), nil
		} else if err != nil {
			return s.last(), err
		}
	}
}

// lastIndexOf returns the last good index of the segment at path.
func lastIndexOf(fsys vfs.FS, path, name string) (uint64, error) {
	s, err := openSeg(fsys, path, name, nil)
	if err != nil {
		return 0, err
	}
	defer s.close()
	return scanToEnd(s)
}
