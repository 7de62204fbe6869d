package transfer

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/cespare/xxhash/v2"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// partial is a snapshot being received into DATA/.transfer/<snapshot ID>/,
// with its WAL tail spilled into DATA/wal:
//
//	snapshot.part  the checkpoint's bytes, written at their offsets
//	PROGRESS       a transfer stream header (role XferProgress), the session
//	               frame, then one chunk frame (header only, no data) per
//	               chunk verified and durable, then the final frame once the
//	               whole snapshot verified
//
// A chunk is recorded only after its bytes were fsync'd, so a record never
// names bytes that a crash could lose. A partial is owned by one goroutine.
type partial struct {
	fs   vfs.FS
	dir  string // the data directory
	sdir string // DATA/.transfer/<id>
	sess format.XferSession
	// final is recorded once the assembled snapshot verified; a restart
	// then finishes the cutover without the sender.
	final *format.XferFinal

	part    vfs.File
	prog    vfs.File
	progEnd int64

	firstMissing uint64              // every chunk below is verified and durable
	above        map[uint64]struct{} // verified and durable chunks past firstMissing (after a resend)
	sums         map[uint64]uint64   // the checksum of each verified chunk
	pending      []format.XferChunk  // written to part, not yet synced and recorded
	pendingBytes int64
	unsynced     map[uint64]struct{} // verified chunks written to part, not yet durable (pending or flushing)

	// A background flush (startFlush) makes flushing durable while the
	// receiver writes the next chunks; flushed delivers its result, and is
	// nil when none runs. Only that goroutine touches prog, progEnd and
	// rec while it runs.
	flushing []format.XferChunk
	flushed  chan error

	log      *segment.Log // the spilled WAL tail
	lastPend *segment.Pending
	rec      []byte // scratch for progress records
}

func (p *partial) id() format.XferSnapshotID { return p.sess.Snapshot }

func transferDir(dir string) string { return filepath.Join(dir, format.TransferDir) }

func (p *partial) partPath() string { return filepath.Join(p.sdir, format.XferPartName) }
func (p *partial) progPath() string { return filepath.Join(p.sdir, format.XferProgressName) }
func walDir(dir string) string      { return filepath.Join(dir, format.WALDir) }

// findPartial returns the partial snapshot of dir, or nil if there is none.
// Other session directories (left by a crash while discarding) are removed.
func findPartial(fs vfs.FS, dir string) (*partial, error) {
	names, err := fs.List(transferDir(dir))
	if vfs.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("kvtool/transfer: %w", err)
	}
	var found *partial
	for _, name := range names {
		if _, ok := format.ParseXferSessionDir(name); !ok {
			continue
		}
		p, err := loadPartial(fs, dir, name)
		if err != nil {
			return nil, err
		}
		if p == nil {
			continue
		}
		if found != nil {
			// Two sessions: keep the newer snapshot.
			if found.id().Index > p.id().Index {
				found, p = p, found
			}
			if err := found.discard(); err != nil {
				return nil, err
			}
		}
		found = p
	}
	return found, nil
}

// loadPartial opens the session directory name. A directory without a
// readable session record is garbage: it is removed and nil returned.
func loadPartial(fs vfs.FS, dir, name string) (*partial, error) {
	p := &partial{fs: fs, dir: dir, sdir: filepath.Join(transferDir(dir), name), above: map[uint64]struct{}{}}
	if _, err := fs.Stat(filepath.Join(p.sdir, format.XferUnverifiedName)); err == nil {
		// Left by a one-way stream that never proved its MAC: its chunks
		// and spilled tail are not to be trusted.
		return nil, p.discard()
	} else if !vfs.IsNotExist(err) { // cannot tell: trust nothing, remove nothing
		return nil, fmt.Errorf("kvtool/transfer: %w", err)
	}
	records, end, err := p.readProgress()
	if err != nil && !vfs.IsNotExist(err) && !errors.Is(err, format.ErrCorruption) {
		return nil, fmt.Errorf("kvtool/transfer: read %s: %w", p.progPath(), err) // may pass: keep the partial
	}
	if err != nil || len(records) == 0 || records[0].sess == nil {
		return nil, removeTree(fs, p.sdir)
	}
	p.sums = map[uint64]uint64{}
	p.sess, p.progEnd = *records[0].sess, end
	p.applyRecords(records[1:])
	if err := p.open(); err != nil {
		p.close()
		if vfs.IsNotExist(err) { // a part file lost before its first chunk: start again
			return nil, removeTree(fs, p.sdir)
		}
		return nil, err
	}
	return p, nil
}

// progressRecord is one frame of a progress file.
type progressRecord struct {
	sess  *format.XferSession
	chunk *format.XferChunk
	final *format.XferFinal
}

// readProgress reads the progress file up to its end or its first damaged
// frame (a torn append), returning the records and the end of the good ones.
func (p *partial) readProgress() ([]progressRecord, int64, error) {
	f, err := p.fs.Open(p.progPath())
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fr := newFrameReader(f, p.progPath(), false)
	if err := fr.header(format.XferProgress, format.XferDuplex); err != nil {
		return nil, 0, err
	}
	var out []progressRecord
	for {
		end := fr.off
		f, err := fr.next()
		if err != nil {
			return out, end, nil // a clean end, or a torn last record: both end here
		}
		rec, err := decodeRecord(f.Type, f.Payload, p.progPath(), f.Offset)
		if err != nil || (len(out) == 0) != (rec.sess != nil) {
			return out, end, nil
		}
		out = append(out, rec)
	}
}

func decodeRecord(t format.FrameType, payload []byte, path string, off int64) (progressRecord, error) {
	var r progressRecord
	switch t {
	case format.FrameXferSession:
		s, err := format.DecodeXferSession(payload, path, off)
		r.sess = &s
		return r, err
	case format.FrameXferChunk:
		c, err := format.DecodeXferChunk(payload, path, off)
		r.chunk = &c
		return r, err
	case format.FrameXferFinal:
		f, err := format.DecodeXferFinal(payload, path, off)
		r.final = &f
		return r, err
	}
	return r, format.Corruptf(path, off, "frame type %d in a progress file", t)
}

// applyRecords marks the recorded chunks verified, and notes the final.
func (p *partial) applyRecords(records []progressRecord) {
	for _, r := range records {
		switch {
		case r.chunk != nil && p.validChunk(*r.chunk):
			p.above[r.chunk.Seq] = struct{}{}
			p.sums[r.chunk.Seq] = r.chunk.Sum
		case r.final != nil:
			p.final = r.final
		}
	}
	p.advance()
}

// validChunk reports whether c fits the session's geometry.
func (p *partial) validChunk(c format.XferChunk) bool {
	return c.Seq < p.sess.ChunkCount && c.Offset == c.Seq*uint64(p.sess.ChunkSize) &&
		uint64(c.RawLen) == p.chunkLen(c.Seq)
}

// chunkLen is the raw length of chunk seq.
func (p *partial) chunkLen(seq uint64) uint64 {
	off := seq * uint64(p.sess.ChunkSize)
	return min(uint64(p.sess.ChunkSize), p.sess.TotalSize-off)
}

// advance moves firstMissing past the verified chunks.
func (p *partial) advance() {
	for {
		if _, ok := p.above[p.firstMissing]; !ok {
			return
		}
		delete(p.above, p.firstMissing)
		p.firstMissing++
	}
}

// open opens the part and progress files of a loaded partial, checks the
// recorded chunks against the bytes on disk (a chunk whose bytes no longer
// match is simply fetched again), and opens the spilled log.
func (p *partial) open() error {
	var err error
	if p.prog, err = openFile(p.fs.OpenReadWrite, p.progPath()); err != nil {
		return err
	}
	if err := p.prog.Truncate(p.progEnd); err != nil { // cut a torn record
		return fmt.Errorf("kvtool/transfer: truncate %s: %w", p.progPath(), err)
	}
	p.part, err = openFile(p.fs.OpenReadWrite, p.partPath())
	if vfs.IsNotExist(err) && p.final != nil {
		return p.openSpill(false) // renamed into snap/ by an interrupted cutover
	} else if err != nil {
		return err
	}
	if err := p.recheck(); err != nil {
		return err
	}
	return p.openSpill(false)
}

// recheck rereads the chunks recorded as verified and forgets any whose
// bytes no longer match their checksum (it is fetched again). It reads each
// recorded chunk once: the work is bounded by the progress file.
func (p *partial) recheck() error {
	ok := map[uint64]struct{}{}
	buf := make([]byte, p.sess.ChunkSize)
	for seq := range p.sums {
		good, err := p.chunkIntact(seq, buf)
		if err != nil {
			return err
		}
		if good {
			ok[seq] = struct{}{}
		}
	}
	for seq := range p.sums {
		if _, good := ok[seq]; !good {
			delete(p.sums, seq)
		}
	}
	p.firstMissing, p.above = 0, ok
	p.advance()
	return nil
}

// chunkIntact reports whether chunk seq's bytes on disk still match the
// checksum its progress record carries.
func (p *partial) chunkIntact(seq uint64, buf []byte) (bool, error) {
	sum, ok := p.sums[seq]
	if !ok {
		return false, nil
	}
	n := p.chunkLen(seq)
	if _, err := p.part.ReadAt(buf[:n], int64(seq*uint64(p.sess.ChunkSize))); err != nil && err != io.EOF {
		return false, fmt.Errorf("kvtool/transfer: read %s: %w", p.partPath(), err)
	}
	return xxhash.Sum64(buf[:n]) == sum, nil
}

// newPartial starts receiving the snapshot of sess: the session directory,
// an empty part file of the snapshot's size, the progress file (published
// atomically: its existence marks the directory as a transfer in
// progress), then a fresh spilled log.
func newPartial(fs vfs.FS, dir string, sess format.XferSession) (*partial, error) {
	sess.Proof, sess.Nonce, sess.ResumeFrom, sess.Flags = [32]byte{}, [32]byte{}, 0, 0
	sess.TailFrom = sess.Snapshot.Index + 1
	p := &partial{fs: fs, dir: dir, sdir: filepath.Join(transferDir(dir), sess.Snapshot.String()), sess: sess,
		above: map[uint64]struct{}{}, sums: map[uint64]uint64{}, unsynced: map[uint64]struct{}{}}
	if err := p.create(); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *partial) create() error {
	if err := mkdirDurable(p.fs, p.sdir); err != nil {
		return err
	}
	var err error
	if p.part, err = openFile(p.fs.Create, p.partPath()); err != nil {
		return err
	}
	if err := p.part.Truncate(int64(p.sess.TotalSize)); err != nil {
		return fmt.Errorf("kvtool/transfer: size %s: %w", p.partPath(), err)
	}
	if err := p.part.Sync(); err != nil {
		return fmt.Errorf("kvtool/transfer: fsync %s: %w", p.partPath(), err)
	}
	b := format.AppendXferStreamHeader(nil, format.XferStreamExt{Role: format.XferProgress, Mode: format.XferDuplex})
	b = format.AppendFrame(b, format.FrameXferSession, format.AppendXferSession(nil, p.sess))
	if err := format.WriteFileAtomic(p.fs, p.progPath(), b); err != nil {
		return fmt.Errorf("kvtool/transfer: %w", err)
	}
	p.progEnd = int64(len(b))
	if p.prog, err = openFile(p.fs.OpenReadWrite, p.progPath()); err != nil {
		return err
	}
	return p.openSpill(true)
}

// openSpill opens the WAL that holds the tail: DATA/wal, with the source's
// store ID, starting at the entry after the snapshot. With no manifest
// yet, nothing in DATA/wal is anybody's data but this transfer's, yet what
// it holds may have been reported to the sender as held (its lease moved
// past it), so only proof replaces it: a log of an earlier snapshot (its
// first index is not this one's) is replaced, a damaged one is repaired
// (segment.Repair: what is cut is kept in a quarantine file, the intact
// entries before the damage stay), and any other failure to open it (an
// I/O error that may pass, a log of another store) is returned with
// everything left in place.
func (p *partial) openSpill(fresh bool) error {
	if !fresh {
		l, err := p.openLog(0)
		if errors.Is(err, format.ErrCorruption) {
			if err = p.repairSpill(err); err == nil {
				l, err = p.openLog(0)
			}
		}
		switch {
		case err != nil:
			return err
		case l.FirstIndex() == p.sess.Snapshot.Index+1 && l.LastIndex() >= p.sess.Snapshot.Index:
			p.log = l
			return nil
		}
		l.Close() // the spilled tail of an earlier snapshot
	}
	if err := clearDir(p.fs, walDir(p.dir)); err != nil {
		return err
	}
	l, err := p.openLog(max(p.sess.Term, 1))
	if err != nil {
		return err
	}
	p.log = l
	return nil
}

// repairSpill cuts the damage open found in the spilled WAL (keeping the
// bytes in quarantine files); the entries it cuts are fetched again.
func (p *partial) repairSpill(found error) error {
	if _, err := segment.Repair(p.fs, walDir(p.dir), segment.RepairOptions{Force: true}); err != nil {
		return fmt.Errorf("kvtool/transfer: repair the spilled WAL in %s after %v: %w", walDir(p.dir), found, err)
	}
	return nil
}

func (p *partial) openLog(term uint64) (*segment.Log, error) {
	l, err := segment.Open(segment.Options{
		FS: p.fs, Dir: walDir(p.dir), SegmentSize: spillSegmentSize(p.sess), StoreID: p.sess.StoreID,
		FirstIndex: p.sess.Snapshot.Index + 1, Term: term, RepairTail: true,
		LazySpare: true, // the tail seldom fills a segment
	})
	if err != nil {
		return nil, fmt.Errorf("kvtool/transfer: open the WAL for the tail: %w", err)
	}
	return l, nil
}

// verified reports whether chunk seq is verified (durable or pending).
func (p *partial) verified(seq uint64) bool {
	if seq < p.firstMissing {
		return true
	}
	if _, ok := p.above[seq]; ok {
		return true
	}
	_, ok := p.unsynced[seq]
	return ok
}

// fileSum is the final frame's checksum of the verified chunks, and
// whether every chunk is verified.
func (p *partial) fileSum() (uint64, bool) {
	f := format.NewXferFileSum()
	for seq := uint64(0); seq < p.sess.ChunkCount; seq++ {
		sum, ok := p.sums[seq]
		if !ok {
			return 0, false
		}
		f.Add(sum)
	}
	return f.Sum64(), true
}

// addChunk writes a verified chunk's bytes at their offset. They count as
// received only once flush has synced them and recorded the chunk.
func (p *partial) addChunk(c format.XferChunk, raw []byte) error {
	if _, err := p.part.WriteAt(raw, int64(c.Offset)); err != nil {
		return fmt.Errorf("kvtool/transfer: write chunk %d to %s at offset %d: %w", c.Seq, p.partPath(), c.Offset, err)
	}
	p.pending = append(p.pending, c)
	p.pendingBytes += int64(c.RawLen)
	if p.unsynced == nil {
		p.unsynced = map[uint64]struct{}{}
	}
	p.unsynced[c.Seq] = struct{}{}
	p.sums[c.Seq] = c.Sum
	return nil
}

// flush makes every chunk written so far durable before it returns: it
// waits for a running background flush, then flushes the pending chunks
// itself.
func (p *partial) flush() error {
	if err := p.waitFlush(); err != nil {
		return err
	}
	if len(p.pending) == 0 {
		return nil
	}
	if err := p.syncChunks(p.pending); err != nil {
		return err
	}
	p.markDurable(p.pending)
	p.pending, p.pendingBytes = p.pending[:0], 0
	return nil
}

// startFlush makes the pending chunks durable on a goroutine of its own,
// so that the receiver goes on writing the next chunks while the disk
// syncs these (a 4 MiB fsync took about 10 ms, half of a transfer's
// streaming time when the receiver waited for it). At most one runs; it
// returns false if one already does or nothing is pending. The caller
// passes the result from flushDone to endFlush.
func (p *partial) startFlush() bool {
	if p.flushed != nil || len(p.pending) == 0 {
		return false
	}
	batch := p.pending
	p.pending, p.pendingBytes = nil, 0 // appends go to a new array: batch belongs to the goroutine
	p.flushing = batch
	done := make(chan error, 1)
	p.flushed = done
	go func() { done <- p.syncChunks(batch) }()
	return true
}

// flushDone delivers the result of the running background flush; nil (a
// channel that never delivers) when none runs.
func (p *partial) flushDone() <-chan error { return p.flushed }

// endFlush takes the result of the background flush: on success its
// chunks are durable, and firstMissing moves past them.
func (p *partial) endFlush(err error) error {
	batch := p.flushing
	p.flushing, p.flushed = nil, nil
	if err != nil {
		return err
	}
	p.markDurable(batch)
	return nil
}

// waitFlush waits for the running background flush, if any, and takes
// its result.
func (p *partial) waitFlush() error {
	if p.flushed == nil {
		return nil
	}
	return p.endFlush(<-p.flushed)
}

// syncChunks makes written chunks durable: fsync their bytes, then append
// their records to the progress file and fsync it. Only after it may
// markDurable move firstMissing (and with it the credit the sender sees).
func (p *partial) syncChunks(batch []format.XferChunk) error {
	if err := p.part.Sync(); err != nil {
		return fmt.Errorf("kvtool/transfer: fsync %s: %w", p.partPath(), err)
	}
	rec := p.rec[:0]
	for _, c := range batch {
		c.Codec, c.WireLen = format.CodecNone, c.RawLen // the record describes the bytes on disk
		rec = format.AppendFrame(rec, format.FrameXferChunk, format.AppendXferChunk(nil, c))
	}
	p.rec = rec
	return p.appendProgress(rec)
}

// markDurable counts synced and recorded chunks as received.
func (p *partial) markDurable(batch []format.XferChunk) {
	for _, c := range batch {
		delete(p.unsynced, c.Seq)
		p.above[c.Seq] = struct{}{}
	}
	p.advance()
}

// appendProgress appends records to the progress file and syncs it.
func (p *partial) appendProgress(b []byte) error {
	if _, err := p.prog.WriteAt(b, p.progEnd); err != nil {
		return fmt.Errorf("kvtool/transfer: append to %s at offset %d: %w", p.progPath(), p.progEnd, err)
	}
	if err := p.prog.Sync(); err != nil {
		return fmt.Errorf("kvtool/transfer: fsync %s: %w", p.progPath(), err)
	}
	p.progEnd += int64(len(b))
	return nil
}

// addTail appends a tail entry to the spilled log (a duplicate of an entry
// it holds, resent after a reconnect, is skipped). It does not wait for
// durability; waitTail does.
func (p *partial) addTail(t format.XferTail, peer string) error {
	last := p.log.LastIndex()
	switch {
	case t.Index <= last:
		return nil
	case t.Index != last+1:
		return protocolf(peer, "tail entry %d does not follow entry %d", t.Index, last)
	case t.Term != p.log.Term():
		return protocolf(peer, "tail entry %d has term %d, the log's is %d (a term change mid-transfer is not supported)", t.Index, t.Term, p.log.Term())
	}
	pend, err := p.log.Enqueue(t.Type, t.Data)
	if err != nil {
		return fmt.Errorf("kvtool/transfer: spill tail entry %d: %w", t.Index, err)
	}
	p.lastPend = pend
	return nil
}

// waitTail waits until every tail entry appended is durable.
func (p *partial) waitTail() error {
	if p.lastPend == nil {
		return nil
	}
	if err := p.lastPend.Wait(); err != nil {
		return fmt.Errorf("kvtool/transfer: spill the tail: %w", err)
	}
	return nil
}

// walLast is the last tail entry durable in the spilled log (the snapshot
// index if none).
func (p *partial) walLast() uint64 { return p.log.DurableIndex() }

// recordFinal durably records the verified final frame.
func (p *partial) recordFinal(f format.XferFinal) error {
	if err := p.appendProgress(format.AppendFrame(nil, format.FrameXferFinal, format.AppendXferFinal(nil, f))); err != nil {
		return err
	}
	p.final = &f
	return nil
}

// close closes the files and the log; it reports the log's failure, if any.
func (p *partial) close() error {
	if p.flushed != nil { // its files are about to close: let it end first
		<-p.flushed
		p.flushing, p.flushed = nil, nil
	}
	for _, f := range []vfs.File{p.part, p.prog} {
		if f != nil {
			f.Close()
		}
	}
	p.part, p.prog = nil, nil
	if p.log == nil {
		return nil
	}
	err := p.log.Close()
	p.log = nil
	return err
}

// discard removes the partial snapshot and its spilled log. The log goes
// first and the progress file before the rest, so a crash part-way leaves
// either a partial the next run reloads (and whose log it rebuilds) or a
// directory without a progress file, which is garbage.
func (p *partial) discard() error {
	p.close()
	if err := clearDir(p.fs, walDir(p.dir)); err != nil {
		return err
	}
	if err := removeTree(p.fs, p.sdir); err != nil {
		return err
	}
	return nil
}

// removeTree removes the session directory dir: its progress file first
// (durably), then everything else.
func removeTree(fs vfs.FS, dir string) error {
	if err := fs.Remove(filepath.Join(dir, format.XferProgressName)); err == nil {
		if err := fs.SyncDir(dir); err != nil {
			return fmt.Errorf("kvtool/transfer: fsync %s: %w", dir, err)
		}
	} else if !vfs.IsNotExist(err) {
		return fmt.Errorf("kvtool/transfer: %w", err)
	}
	if err := clearDir(fs, dir); err != nil {
		return err
	}
	if err := fs.Remove(dir); err != nil && !vfs.IsNotExist(err) {
		return fmt.Errorf("kvtool/transfer: %w", err)
	}
	return syncDir(fs, filepath.Dir(dir))
}

// clearDir removes every file in dir (which may not exist) and syncs it.
func clearDir(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if vfs.IsNotExist(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("kvtool/transfer: %w", err)
	}
	for _, n := range names {
		if err := fs.Remove(filepath.Join(dir, n)); err != nil && !vfs.IsNotExist(err) {
			return fmt.Errorf("kvtool/transfer: %w", err)
		}
	}
	return syncDir(fs, dir)
}

func syncDir(fs vfs.FS, dir string) error {
	if err := fs.SyncDir(dir); err != nil && !vfs.IsNotExist(err) {
		return fmt.Errorf("kvtool/transfer: fsync %s: %w", dir, err)
	}
	return nil
}

// openFile opens path with open, returning a nil File (not a typed nil)
// on failure.
func openFile(open func(string) (vfs.File, error), path string) (vfs.File, error) {
	f, err := open(path)
	if err != nil {
		return nil, fmt.Errorf("kvtool/transfer: %w", err)
	}
	return f, nil
}

// mkdirDurable creates dir and its missing parents durably
// (format.MkdirAllDurable, the one durable-publish path).
func mkdirDurable(fs vfs.FS, dir string) error {
	if err := format.MkdirAllDurable(fs, dir); err != nil {
		return fmt.Errorf("kvtool/transfer: %w", err)
	}
	return nil
}

// maxSpillSegment bounds the segments of the spilled tail: each is
// preallocated whole (on a tmpfs that zero-fills it), and every read of
// the received store to its end (its open, verify) checks the zeros after
// the last entry, while a tail is seldom more than a few megabytes: with
// the source's 64 MiB a joining member spent some 20 ms of CPU on the
// zeros of a 1 MB tail, 5% of its join. A longer tail rotates into more
// segments; the store the directory becomes keeps the source's size
// (segmentSize) for the segments it writes after them.
const maxSpillSegment = 4 << 20

// spillSegmentSize is the segment size of a session's spilled tail.
func spillSegmentSize(sess format.XferSession) int64 {
	return min(segmentSize(sess), maxSpillSegment)
}

// segmentSize is the WAL segment size for a session: the source's, unless
// it is out of the range a log accepts.
func segmentSize(sess format.XferSession) int64 {
	if sess.SegmentSize < 64<<10 || sess.SegmentSize > 1<<32 {
		return segment.DefaultSegmentSize
	}
	return int64(sess.SegmentSize)
}
