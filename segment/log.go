package segment

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// DefaultSegmentSize is the rotation threshold when Options.SegmentSize is 0.
const DefaultSegmentSize = 64 << 20

// maxBatchBytes bounds the bytes one batch (one write + one fsync) carries;
// Enqueue waits for the flusher beyond it, so a burst cannot grow the buffer
// without limit.
const maxBatchBytes = 4 << 20

// Entry is one record of the log.
type Entry struct {
	Index uint64
	Term  uint64
	Type  format.FrameType
	Data  []byte // valid until the next call to Next
}

// Options configure Open.
type Options struct {
	FS  vfs.FS
	Dir string // the WAL directory (DATA/wal); created if missing
	// SegmentSize is the rotation threshold and the size each segment is
	// preallocated to; default DefaultSegmentSize.
	SegmentSize int64
	// Term is written on new records. 0 means the term of the last record
	// (1 for a new log); a term below it is an error.
	Term uint64
	// StoreID is the identity of the store, written in every segment header
	// and checked on open (a mismatch wraps ErrStoreMismatch). All zeros
	// means "whatever the existing segments say" (a new log gets zeros).
	StoreID [16]byte
	// FirstIndex is the index of the first record of a brand-new, empty log;
	// default 1. It is ignored when segments exist.
	FirstIndex uint64
	// RepairTail makes Open cut a torn tail of the newest segment (kept in a
	// quarantine file, exactly as Repair does; see Log.TailCut) instead of
	// failing with ErrTornTail.
	RepairTail bool
	// OnDurable, if set, is called by the flusher after each successful
	// sync, in index order, before the waiters of that sync are released.
	// It runs on the flusher's goroutine: it must be quick and must not
	// wait for an append.
	OnDurable func(last uint64)
	// OnSync, if set, is called by the flusher after each successful batch
	// write + fsync with what it cost (for metrics). Same rules as
	// OnDurable.
	OnSync func(SyncStats)
	// NoGather turns off the flusher's adaptive wait for the next cohort
	// (see gather): for a log whose one appender enqueues a whole batch and
	// then waits for it (a raft log written by its Ready loop), nothing more
	// comes while the flusher waits, so the wait only adds latency.
	NoGather bool
	// CallerFlush leaves the writing of records to their appender: a
	// record does not wake the flusher (only a full batch, Rotate and
	// Close do); the appender calls Flush, which writes and syncs on its
	// own goroutine, or Wake to have the flusher do it meanwhile. For a
	// log whose one appender enqueues a batch and then waits for it (a
	// raft log written by its Ready loop): the hand-off to the flusher and
	// back cost two goroutine wake-ups per batch. Use it with NoGather and
	// no SyncInterval: a Flush waits while the flusher gathers or paces.
	CallerFlush bool
	// SyncInterval, if positive, paces the flusher: a batch is written and
	// synced at most once per interval (sooner when the batch grows past
	// half the batch limit, an appender waits for space, or on Rotate and
	// Close), so records wait up to that long to become durable. For a log
	// whose durability nobody waits on, because another log already holds
	// the same records durably (a cluster member's store WAL behind its
	// raft log): its fsyncs then stop competing with that log's for the
	// disk.
	SyncInterval time.Duration
	// LazySpare has the next segment prepared only once the active one is
	// half full (or a record does not fit in it), instead of as soon as
	// the log opens or rotates. For a log that seldom fills its first
	// segment, whose spare would be allocated and then removed unused (a
	// transfer's spilled tail; the logs of a member that joins by
	// snapshot, which SkipTo restarts): on a tmpfs, preallocating zero-
	// fills the whole segment. A rotation or SkipTo that finds no spare
	// ready prepares one itself.
	LazySpare bool
}

// SyncStats describes one group commit: one write and one fsync.
type SyncStats struct {
	Records int           // records in the batch
	Bytes   int           // bytes written
	Write   time.Duration // time in the write call
	Sync    time.Duration // time in the fsync call
}

// Log is an open write-ahead log. All its methods are safe for concurrent use.
//
// Three kinds of goroutine share it: callers (Append, Enqueue, Rotate and
// the readers of its state), the one flusher (flushLoop: write, fsync,
// rotate, release waiters) and the one background worker (spareWorker:
// prepare the next segment, trim sealed ones). Each field says which of
// them owns it, or which lock guards it.
type Log struct {
	// Set by Open before the goroutines start, then only read.
	fs        vfs.FS
	dir       string
	segSize   int64
	storeID   [16]byte
	term      uint64
	onDurable func(uint64)
	onSync    func(SyncStats)
	noGather  bool
	callerFl  bool          // Options.CallerFlush
	interval  time.Duration // Options.SyncInterval
	maxBatch  int
	tailCut   *Cut

	// mu guards every field from here to the channels.
	mu      sync.Mutex
	space   *sync.Cond // signalled when the flusher takes the buffer or writes, when a spare is prepared (or fails), on close and on failure
	buf     []byte     // the records of cur, encoded
	cur     *batch     // the batch being filled
	next    uint64     // index the next record gets
	waiting int        // Enqueue calls blocked on space
	closed  bool
	failed  error // non-nil (wrapping ErrFailed) once a write, fsync or rotation failed
	// Space accounting for admit: the bytes enqueued but not yet written,
	// and the active segment's end of data and record count as of the
	// flusher's last write or rotation.
	queued     int64
	activeOff  int64
	activeRecs int64
	// The spare (see spare.go): the next segment, prepared ahead of time
	// by the worker; whether the worker is preparing one; why its last
	// attempt failed (nil after a success); and the sealed segments the
	// flusher hands the worker to trim and close.
	ready     *spareFile
	preparing bool
	lazy      bool // Options.LazySpare
	wantSpare bool // with lazy: a record waits for a spare
	spareErr  error
	trims     []*activeSeg
	gathering bool  // the flusher is in gather: enqueue pokes grew once it has what gather waits for
	gatherFor int64 // while gathering: the records gather waits for

	// Channels, created by Open.
	wake     chan struct{} // capacity 1: there is work for the flusher
	grew     chan struct{} // capacity 1: poked by enqueue while gathering is set
	stopped  chan struct{} // closed when the flusher returns
	work     chan struct{} // capacity 1: wakes the worker
	quit     chan struct{} // closed by Close: the worker stops
	workDone chan struct{} // closed when the worker returns

	// Written by the flusher (durable) and by appenders under mu (last);
	// read by anyone.
	durable atomic.Uint64
	last    atomic.Uint64

	// fl is the flusher's own: only the goroutine holding flushMu (the
	// flusher, or a Flush) touches it while the flusher runs; Open fills
	// it in before, Close reads it after <-stopped.
	fl flusher
	// flushMu makes one goroutine at a time the flusher, the owner of fl:
	// the flusher goroutine holds it while it paces, gathers, takes and
	// writes a batch, Flush while it takes and writes one on its caller's
	// goroutine.
	flushMu sync.Mutex

	// segMu guards segs: the flusher updates the active segment's entry
	// and appends at rotation, Drop removes from the front, and readers
	// (Segments, FirstIndex) copy.
	segMu sync.Mutex
	segs  []segMeta // oldest first; the last is the active segment
	// segGen counts the changes to segs (a rotation, a drop), each made
	// before any entry of a new segment becomes durable: a Reader of this
	// log whose generation is current needs no new directory listing to
	// follow it (Reader.Follow).
	segGen atomic.Uint64
	dropMu sync.Mutex // serializes Drop calls

	closeOnce sync.Once
	closeErr  error // Close's result, set inside closeOnce
}

// flusher is the state the flusher goroutine owns (see Log.fl).
type flusher struct {
	active   *activeSeg // the segment records are written to
	spareBuf []byte     // the other buffer of the double buffering: swapped with Log.buf by take
	// endsClosed is set while the active segment's data ends with a
	// clean-shutdown record: a log opened and closed with nothing written
	// in between does not write another.
	endsClosed bool
	// Adaptive group commit (see gather): expect is the size of the cohort
	// the last flush released; syncEWMA is a running average of fsync
	// time.
	expect   int64
	syncEWMA time.Duration
	// gathers and gatherWakes count gather's waits and the pokes that
	// woke them (for tests: about one poke a wait, not one a record).
	gathers, gatherWakes int
	// lastFlush is when the last batch's write began (pace).
	lastFlush time.Time
	closeRec  error // what writing the clean-shutdown record returned
}

// batch is the set of records that share one write and one fsync. Every
// Pending of the batch waits on its done channel: one channel per batch,
// none per record.
type batch struct {
	done   chan struct{}
	err    error  // set before done is closed
	last   uint64 // index of the batch's last record
	n      int64  // records in the batch
	rotate bool   // Rotate asked for a new segment after this batch
	hurry  bool   // Hurry: write it without waiting out the SyncInterval
	skipTo uint64 // SkipTo: the new segment starts at this index (0: right after the batch)
	rotErr error  // why that rotation did not happen (the log goes on); set before done is closed
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// activeSeg is the segment the flusher writes to.
type activeSeg struct {
	f       vfs.File
	path    string
	first   uint64
	sum     uint64 // header checksum, for the next segment's link
	off     int64  // end of data: where the next batch goes
	records int64
}

func (a *activeSeg) link() link { return link{a.first, a.sum} }

// segMeta describes a segment of the open log.
type segMeta struct {
	info SegmentInfo
	sum  uint64 // header checksum
	// marks locate some records this log wrote into the segment, in
	// order, at least markEvery bytes apart, so that a reader from an index
	// in its middle (Log.NewReader) starts near it instead of at the
	// segment's start. Segments that were there when the log opened have
	// none.
	marks []mark
}

// mark is the offset of the frame of the record index.
type mark struct {
	index uint64
	off   int64
}

// markEvery is the least distance between two marks of a segment: a
// reader that starts at a mark reads at most this much (and one batch)
// before the index it wants.
const markEvery = 256 << 10

// addMark records that the record index starts at off, if off is at
// least markEvery past the last mark (or the segment's start).
func (m *segMeta) addMark(index uint64, off int64) {
	last := int64(0)
	if n := len(m.marks); n > 0 {
		last = m.marks[n-1].off
	}
	if off-last >= markEvery {
		m.marks = append(m.marks, mark{index, off})
	}
}

// markFor returns the last mark of the segment named name at or before
// index, if there is one.
func (l *Log) markFor(name string, index uint64) (mark, bool) {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	for _, m := range l.segs {
		if m.info.Name != name {
			continue
		}
		mk := m.markBefore(index)
		return mk, mk.index != 0 // a record's index is never 0
	}
	return mark{}, false
}

// Pending is an enqueued record on its way to disk.
type Pending struct {
	b     *batch
	index uint64
	l     *Log // a log with CallerFlush: Wait writes the record itself
}

// pending returns the Pending of record index in batch b.
func (l *Log) pending(b *batch, index uint64) *Pending {
	p := &Pending{b: b, index: index}
	if l.callerFl {
		p.l = l
	}
	return p
}

// Index returns the index assigned to the record.
func (p *Pending) Index() uint64 { return p.index }

// Wait blocks until the record is durable and returns nil, or returns the
// log's failure (wrapping ErrFailed) if it never will be. In a log with
// Options.CallerFlush it writes and syncs the record itself (Log.Flush)
// unless it is durable already.
func (p *Pending) Wait() error {
	if p.l != nil {
		select {
		case <-p.b.done:
		default:
			p.l.Flush() // its error is the batch's, or the log's: b.err below
		}
	}
	<-p.b.done
	return p.b.err
}

// Done returns a channel closed when Wait would return. In a log with
// Options.CallerFlush only a Wait, a Flush or a Wake makes it so.
func (p *Pending) Done() <-chan struct{} { return p.b.done }

// Hurry has the batch holding p written and synced without waiting out
// the log's SyncInterval (for a caller about to Wait for a record that
// nobody else waits for: a checkpoint of a state the WAL must hold
// durably first). It does not wait; a batch already being written needs
// no hurry.
func (l *Log) Hurry(p *Pending) {
	l.mu.Lock()
	queued := l.cur == p.b
	if queued {
		p.b.hurry = true
	}
	l.mu.Unlock()
	if queued {
		l.interrupt()
	}
}

// Append adds a record of type t and returns its index once it is durable.
func (l *Log) Append(t format.FrameType, data []byte) (uint64, error) {
	b, idx, err := l.enqueue(t, data)
	if err != nil {
		return 0, err
	}
	<-b.done
	if b.err != nil {
		return 0, b.err
	}
	return idx, nil
}

// Enqueue assigns the next index to a record of type t, copies data into the
// write buffer and returns at once; Wait on the result for durability.
// Records become durable in index order. Enqueue blocks while the buffer
// holds a full batch (backpressure), and while the record needs the next
// segment and the background worker is still preparing it. If the record
// needs the next segment and the disk has no room for it, Enqueue fails at
// once with an error wrapping ErrNoSpace, and assigns no index.
func (l *Log) Enqueue(t format.FrameType, data []byte) (*Pending, error) {
	b, idx, err := l.enqueue(t, data)
	if err != nil {
		return nil, err
	}
	return l.pending(b, idx), nil
}

// enqueue encodes the record straight into the current batch's buffer,
// under l.mu so that buffer order is index order.
func (l *Log) enqueue(t format.FrameType, data []byte) (*batch, uint64, error) {
	size, err := recordSize(t, data)
	if err != nil {
		return nil, 0, err
	}
	l.mu.Lock()
	if err := l.admitLocked(size); err != nil {
		return nil, 0, err
	}
	idx := l.next
	return l.addLocked(t, idx, l.term, data, size), idx, nil
}

// admitLocked waits, with l.mu held, until size more bytes of records may
// be queued. On an error it returns with l.mu released.
func (l *Log) admitLocked(size int64) error {
	for {
		if err := l.stateErr(); err != nil {
			l.mu.Unlock()
			return err
		}
		ok, err := l.admit(size)
		if err != nil {
			l.mu.Unlock()
			l.poke()
			return err
		}
		if ok {
			return nil
		}
		if l.callerFl {
			l.signal() // nothing else woke the flusher for what is queued
		}
		l.waiting++
		if l.gathering {
			select { // out of a pace or gather wait: space is wanted now
			case l.grew <- struct{}{}:
			default:
			}
		}
		l.space.Wait()
		l.waiting--
	}
}

// EnqueueBatch is Enqueue for several records at once: it assigns them
// consecutive indexes and copies them into the current batch's buffer
// under one hold of the log's lock, so that they share one write and one
// fsync and become durable together. It returns the first index and the
// Pending of the last record (Wait on it for all of them). All of the
// records are logged or none: on an error no index is assigned. Their
// frames together may exceed MaxBatchBytes only if there is one record.
func (l *Log) EnqueueBatch(t format.FrameType, data [][]byte) (uint64, *Pending, error) {
	if len(data) == 0 {
		return 0, nil, fmt.Errorf("%w: an empty batch", ErrTooLarge)
	}
	if len(data) == 1 {
		p, err := l.Enqueue(t, data[0])
		if err != nil {
			return 0, nil, err
		}
		return p.index, p, nil
	}
	total := int64(0)
	for _, d := range data {
		size, err := recordSize(t, d)
		if err != nil {
			return 0, nil, err
		}
		total += size
	}
	if total > int64(l.maxBatch) {
		return 0, nil, fmt.Errorf("%w: %d records of %d bytes, the batch limit is %d", ErrTooLarge, len(data), total, l.maxBatch)
	}
	l.mu.Lock()
	if err := l.admitLocked(total); err != nil {
		return 0, nil, err
	}
	first, empty := l.next, len(l.buf) == 0
	for _, d := range data[:len(data)-1] {
		l.encodeLocked(t, l.next, l.term, d, int64(format.FrameHeaderSize+recordHeaderSize+len(d)))
	}
	last := l.next
	d := data[len(data)-1]
	b := l.addLocked(t, last, l.term, d, int64(format.FrameHeaderSize+recordHeaderSize+len(d)))
	if empty && !l.callerFl {
		l.signal() // addLocked saw the batch's own records, not an empty buffer
	}
	return first, l.pending(b, last), nil
}

// MaxBatchBytes is the most bytes of frames one EnqueueBatch may carry.
func (l *Log) MaxBatchBytes() int { return l.maxBatch }

// FrameBytes is how many bytes of a segment (and of MaxBatchBytes) a
// record holding n bytes of data takes: its frame and record headers and
// the data. A caller sizing a batch for EnqueueBatch counts with it.
func FrameBytes(n int) int { return format.FrameHeaderSize + recordHeaderSize + n }

// recordSize returns the frame size of a record of type t holding data,
// or why it cannot be logged.
func recordSize(t format.FrameType, data []byte) (int64, error) {
	if !isEntryType(t) {
		return 0, fmt.Errorf("%w: frame type %d", ErrBadType, t)
	}
	if len(data) > maxData {
		return 0, fmt.Errorf("%w: %d bytes of data, the limit is %d", ErrTooLarge, len(data), maxData)
	}
	return int64(FrameBytes(len(data))), nil
}

// addLocked encodes the record of index idx (the log's next) into the
// current batch and wakes the flusher, returning the batch. l.mu is held
// on entry, so that buffer order is index order, and released before the
// wake-ups.
func (l *Log) addLocked(t format.FrameType, idx, term uint64, data []byte, size int64) *batch {
	first := len(l.buf) == 0
	b := l.encodeLocked(t, idx, term, data, size)
	l.unlockAdded(b, first) // later records of this batch find the flusher already woken
	return b
}

// unlockAdded releases l.mu after records were added to batch b, and wakes
// the flusher: a gathering one once b is what it waits for (poked on every
// record, it woke up to 128 times a batch, taking CPU and l.mu from the
// appenders it was waiting for), an idle one if wake (the records started
// the buffer) and the flusher, not the caller, writes it.
func (l *Log) unlockAdded(b *batch, wake bool) {
	gathered := l.gathering && (b.n >= l.gatherFor || len(l.buf) >= l.maxBatch/2)
	l.mu.Unlock()
	if gathered {
		select {
		case l.grew <- struct{}{}:
		default:
		}
	}
	if wake && !l.callerFl {
		l.signal()
	}
}

// encodeLocked encodes the record of index idx (the log's next) into the
// current batch and returns the batch; l.mu is held.
func (l *Log) encodeLocked(t format.FrameType, idx, term uint64, data []byte, size int64) *batch {
	l.queued += size
	l.next = idx + 1
	l.buf = appendRecord(growBatch(l.buf, int(size), l.maxBatch), t, idx, term, data)
	b := l.cur
	b.last, b.n = idx, b.n+1
	l.last.Store(idx)
	return b
}

// growBatch makes room in a batch buffer for size more bytes, doubling
// its capacity up to maxBatch: append grows a large slice by about a
// quarter at a time, copying it each time, and a fresh log filling 4 MiB
// batches (a joining member's, taking a log tail) copied some 20 MB per
// buffer that way.
func growBatch(buf []byte, size, maxBatch int) []byte {
	need := len(buf) + size
	if need <= cap(buf) {
		return buf
	}
	return slices.Grow(buf, max(need, min(2*cap(buf), maxBatch))-len(buf))
}

// appendRecord appends one record frame to dst, built in place.
func appendRecord(dst []byte, t format.FrameType, idx, term uint64, data []byte) []byte {
	dst, start := format.BeginFrame(dst, t)
	dst = binary.LittleEndian.AppendUint64(dst, idx)
	dst = binary.LittleEndian.AppendUint64(dst, term)
	dst = append(dst, data...)
	format.FinishFrame(dst, start)
	return dst
}

// stateErr is the error for a log that cannot take records. l.mu is held.
func (l *Log) stateErr() error {
	if l.failed != nil {
		return l.failed
	}
	if l.closed {
		return ErrClosed
	}
	return nil
}

func (l *Log) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// interrupt wakes the flusher, also out of a gather: Rotate and Close
// want it to act now, not when its gathering wait runs out.
func (l *Log) interrupt() {
	l.signal()
	select {
	case l.grew <- struct{}{}:
	default:
	}
}

// FirstIndex returns the first index of the oldest segment.
func (l *Log) FirstIndex() uint64 {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	return l.segs[0].info.FirstIndex
}

// BytesAfter returns about how many bytes the records after index take
// in the log's segments, never fewer: the whole of every segment whose
// records all come after it, and of the segment holding index+1 what
// follows its last mark at or before index+1 (at most markEvery and one
// batch too many), or all of it if it has no marks (it was there when the
// log opened).
func (l *Log) BytesAfter(index uint64) int64 {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	n := int64(0)
	for _, m := range l.segs {
		switch {
		case m.info.LastIndex <= index:
		case m.info.FirstIndex > index:
			n += m.info.Size
		default:
			n += m.info.Size - m.markBefore(index+1).off
		}
	}
	return n
}

// markBefore returns the segment's last mark at or before index (the
// segment's start if there is none).
func (m *segMeta) markBefore(index uint64) mark {
	i, found := slices.BinarySearchFunc(m.marks, index, func(k mark, t uint64) int { return cmp.Compare(k.index, t) })
	switch {
	case found:
		return m.marks[i]
	case i > 0:
		return m.marks[i-1]
	}
	return mark{}
}

// LastIndex returns the last index assigned (durable or not).
func (l *Log) LastIndex() uint64 { return l.last.Load() }

// DurableIndex returns the last index known durable.
func (l *Log) DurableIndex() uint64 { return l.durable.Load() }

// Term returns the term written on new records.
func (l *Log) Term() uint64 { return l.term }

// TailCut returns what Open cut from a torn tail (Options.RepairTail), or
// nil if it cut nothing.
func (l *Log) TailCut() *Cut { return l.tailCut }

// Rotate seals the active segment and starts a new one. It returns once
// every record enqueued before it is durable and the new segment exists. If
// the active segment holds no record it does nothing (a new segment would
// have the same name). If the next segment cannot be prepared it returns
// that error (wrapping ErrNoSpace on a full disk) and the log goes on in
// the active segment.
func (l *Log) Rotate() error {
	l.mu.Lock()
	if err := l.stateErr(); err != nil {
		l.mu.Unlock()
		return err
	}
	b := l.cur
	b.rotate = true
	l.mu.Unlock()
	l.interrupt()
	<-b.done
	if b.err != nil {
		return b.err
	}
	return b.rotErr
}

// SpaceErr returns why the next segment could not be prepared (wrapping
// ErrNoSpace on a full disk), or nil. While it is set, records that need
// the next segment are refused; the log retries by itself.
func (l *Log) SpaceErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spareErr
}

// Segments describes the segments of the log, oldest first. Size is the
// bytes of data (header and records), not the preallocated size.
func (l *Log) Segments() []SegmentInfo {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	out := make([]SegmentInfo, len(l.segs))
	for i, m := range l.segs {
		out[i] = m.info
	}
	return out
}

// Err returns nil while the log is healthy, and an error wrapping ErrFailed
// once it has failed.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// NewReader returns a Reader over the records of the open log with Index >=
// from, up to the durable index at the time of the call. It starts at the
// record this log marked last at or before from in the segment that holds
// it (see segMeta.marks), rather than at the segment's start: a reader
// from the middle of a large segment (a transfer's tail, a lagging raft
// follower's entries) then skips the records before from without reading
// them, which this log wrote and Open checked.
func (l *Log) NewReader(from uint64) (*Reader, error) {
	limit := l.DurableIndex()
	gen := l.segGen.Load() // before the listing: a change after it makes Follow list again
	r, err := newReader(l.fs, l.dir, from, limit)
	if err != nil {
		return nil, err
	}
	r.segGen, r.gen = &l.segGen, gen
	if r.i < len(r.names) {
		if m, ok := l.markFor(r.names[r.i], from); ok {
			r.start = &m
		}
	}
	return r, nil
}

// Close flushes and syncs what is buffered, writes and syncs the record
// that marks a clean shutdown (unless the log failed), stops the flusher
// and the background worker, removes the unused spare and closes the
// active segment. It returns the log's failure, if any. Calling it again
// returns the same result.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.space.Broadcast()
		l.mu.Unlock()
		l.interrupt()
		<-l.stopped
		close(l.quit)
		<-l.workDone
		err := l.Err()
		if err == nil {
			err = l.fl.closeRec
		}
		if derr := l.dropSpare(); err == nil {
			err = derr
		}
		if cerr := l.fl.active.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("kvtool/segment: close %s: %w", l.fl.active.path, cerr)
		}
		l.closeErr = err
	})
	return l.closeErr
}

// dropSpare removes the unused spare, if any, and syncs the directory.
func (l *Log) dropSpare() error {
	l.mu.Lock()
	sp := l.ready
	l.ready = nil
	l.mu.Unlock()
	if sp == nil {
		return nil
	}
	sp.discard(l.fs)
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("kvtool/segment: fsync directory %s: %w", l.dir, err)
	}
	return nil
}
