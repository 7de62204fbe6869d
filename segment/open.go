package segment

import (
	"fmt"
	"path/filepath"
	"sync"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// Open opens the log in opts.Dir, creating the directory (durably: its
// parent is synced) and a first segment if needed.
//
// With segments present it reads every header and checks the store ID and
// the header chain, then scans the newest segment to its end of data and
// continues appending there: the bytes after the end of data were checked to
// be zero, so nothing stale can follow the new records. A torn tail is cut
// first (Options.RepairTail) or is an error (ErrTornTail). Anything else
// wrong with the newest segment is an error naming the file and offset
// (wrapping format.ErrCorruption), and Open changes nothing: a damaged
// record whose bytes are all there, a seal record (the segment it names is
// missing), a file shorter than its preallocation. Older segments are not
// scanned here: damage in them is for Verify and the Reader to report, and
// must not stop a store whose needed history is intact. An empty newest
// segment after an unsealed one (a crash during a rotation) is removed.
// Leftover temporary files are removed; quarantine files are left alone.
//
// Before returning, Open syncs the newest segment and the directory, so the
// records it found (perhaps written but never synced by a process that
// crashed) are durable before anything built on them is acknowledged.
func Open(opts Options) (*Log, error) {
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.FirstIndex == 0 {
		opts.FirstIndex = 1
	}
	if err := makeDir(opts.FS, opts.Dir); err != nil {
		return nil, err
	}
	if err := removeTemps(opts.FS, opts.Dir); err != nil {
		return nil, err
	}
	if err := finishTruncate(opts.FS, opts.Dir); err != nil {
		return nil, err
	}
	names, err := walNames(opts.FS, opts.Dir)
	if err != nil {
		return nil, err
	}
	l := newLog(opts)
	if len(names) == 0 {
		err = l.create(opts)
	} else {
		err = l.openExisting(opts, names)
	}
	if err != nil {
		return nil, err
	}
	l.activeOff, l.activeRecs = l.fl.active.off, l.fl.active.records
	go l.flushLoop()
	go l.spareWorker()
	l.poke()
	return l, nil
}

// makeDir creates dir if it is missing, and makes its entry durable.
func makeDir(fsys vfs.FS, dir string) error {
	if err := format.MkdirAllDurable(fsys, dir); err != nil {
		return fmt.Errorf("kvtool/segment: create %s: %w", dir, err)
	}
	return nil
}

func newLog(opts Options) *Log {
	l := &Log{
		fs: opts.FS, dir: opts.Dir, segSize: opts.SegmentSize, storeID: opts.StoreID,
		onDurable: opts.OnDurable, onSync: opts.OnSync, noGather: opts.NoGather, callerFl: opts.CallerFlush, interval: opts.SyncInterval, lazy: opts.LazySpare, cur: newBatch(),
		wake: make(chan struct{}, 1), grew: make(chan struct{}, 1), stopped: make(chan struct{}),
		work: make(chan struct{}, 1), quit: make(chan struct{}), workDone: make(chan struct{}),
	}
	l.maxBatch = int(min(maxBatchBytes, l.capacity()))
	l.space = sync.NewCond(&l.mu)
	return l
}

// create starts a brand-new log.
func (l *Log) create(opts Options) error {
	l.term = max(opts.Term, 1)
	h := segHeader{storeID: l.storeID, first: opts.FirstIndex, term: l.term}
	a, err := createSegment(l.fs, l.dir, h, l.segSize)
	if err != nil {
		return fmt.Errorf("kvtool/segment: %w", err)
	}
	l.start(a, h.term, nil)
	return nil
}

// start makes a the active segment after the sealed segments sealed.
func (l *Log) start(a *activeSeg, term uint64, sealed []segMeta) {
	l.fl.active = a
	l.segs = append(sealed, segMeta{info: a.info(term), sum: a.sum})
	last := a.first + uint64(a.records) - 1
	l.next = last + 1
	l.last.Store(last)
	l.durable.Store(last)
}

// openExisting opens a log with segments names (oldest first).
func (l *Log) openExisting(opts Options, names []string) error {
	sealed, err := l.readHeaders(names)
	if err != nil {
		return err
	}
	if kept, err := l.dropInterrupted(names); err != nil {
		return err
	} else if len(kept) < len(names) {
		names = kept
		if sealed, err = l.readHeaders(names); err != nil {
			return err
		}
	}
	newest := names[len(names)-1]
	r, err := l.scanNewest(newest, opts.RepairTail)
	if err != nil {
		return err
	}
	if err := l.chooseTerm(opts.Term, r.lastTerm); err != nil {
		return err
	}
	a, err := l.reopen(r)
	if err != nil {
		return err
	}
	l.fl.endsClosed = r.closed
	l.start(a, r.hdr.term, sealed)
	return nil
}

// readHeaders checks every segment's header, store ID and link to its
// predecessor, and describes the sealed ones (all but the newest) from their
// headers: a sealed segment ends just before the next one starts, and was
// trimmed to its data when it was sealed.
func (l *Log) readHeaders(names []string) ([]segMeta, error) {
	metas := make([]segMeta, len(names))
	var hdrs []segHeader
	for i, name := range names {
		path := filepath.Join(l.dir, name)
		h, sum, size, err := statHeader(l.fs, path, name)
		if err != nil {
			return nil, err
		}
		if err := l.checkStore(&h, path); err != nil {
			return nil, err
		}
		if i > 0 && h.prev() != (link{hdrs[i-1].first, metas[i-1].sum}) {
			return nil, fmt.Errorf("kvtool/segment: %w", format.Corruptf(path, 0,
				"header chain break: links to segment %d (header checksum %016x), the previous segment is %s (missing or replaced segment)",
				h.prevFirst, h.prevSum, names[i-1]))
		}
		hdrs = append(hdrs, h)
		metas[i] = segMeta{info: SegmentInfo{Name: name, Path: path, FirstIndex: h.first, Size: size, Term: h.term}, sum: sum}
	}
	for i := range len(metas) - 1 {
		m := &metas[i].info
		m.LastIndex = hdrs[i+1].first - 1
		m.Records = int64(m.LastIndex + 1 - m.FirstIndex)
	}
	return metas[:len(metas)-1], nil
}

// statHeader reads the header and the size of one segment.
func statHeader(fsys vfs.FS, path, name string) (segHeader, uint64, int64, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return segHeader{}, 0, 0, fmt.Errorf("kvtool/segment: open %s: %w", path, err)
	}
	defer f.Close()
	h, sum, err := readHeader(f, path, name)
	if err != nil {
		return h, 0, 0, err
	}
	size, err := f.Size()
	return h, sum, size, err
}

// checkStore checks a segment's store ID, adopting the first one seen when
// the options gave none.
func (l *Log) checkStore(h *segHeader, path string) error {
	if l.storeID == ([16]byte{}) {
		l.storeID = h.storeID
	}
	if h.storeID != l.storeID {
		return fmt.Errorf("%w: %s has store ID %x, want %x", ErrStoreMismatch, path, h.storeID, l.storeID)
	}
	return nil
}

// newestScan is what Open learned about the newest segment.
type newestScan struct {
	*segResult
	lastTerm uint64
}

// newestRole is the role of the newest segment when the log is opened.
var newestRole = segRole{last: true, tornOK: true}

// scanNewest scans the newest segment; a torn tail is cut if repair is set.
func (l *Log) scanNewest(name string, repair bool) (*newestScan, error) {
	r, err := analyzeSeg(l.fs, l.dir, name, newestRole)
	if err != nil {
		return nil, err
	}
	if len(r.problems) > 0 && !(r.torn() && repair) {
		p := r.problems[0]
		ce := &format.CorruptionError{Path: p.Path, Offset: p.Offset, Reason: p.Reason}
		if r.torn() {
			return nil, fmt.Errorf("%w: %w", ErrTornTail, ce)
		}
		return nil, fmt.Errorf("kvtool/segment: %s in the newest segment; the log was not opened and nothing was changed "+
			"(wal repair --dry-run --force says what cutting it would lose): %w", p.Kind, ce)
	}
	if len(r.problems) > 0 {
		cut, err := cutTail(l.fs, r, false)
		if err != nil {
			return nil, err
		}
		l.tailCut = &cut
		if r, err = analyzeSeg(l.fs, l.dir, name, newestRole); err != nil {
			return nil, err
		}
		if len(r.problems) > 0 {
			return nil, fmt.Errorf("kvtool/segment: %s still damaged after cutting its tail: %s", r.info.Path, r.problems[0])
		}
	}
	return &newestScan{segResult: r, lastTerm: r.lastTerm}, nil
}

// chooseTerm settles the term of new records.
func (l *Log) chooseTerm(want, last uint64) error {
	if want == 0 {
		l.term = max(last, 1)
		return nil
	}
	if want < last {
		return fmt.Errorf("kvtool/segment: term %d is below the log's last term %d", want, last)
	}
	l.term = want
	return nil
}

// reopen opens the newest segment for appending after its end of data,
// preallocated to the segment size, and makes it and the directory durable.
func (l *Log) reopen(r *newestScan) (*activeSeg, error) {
	path := r.info.Path
	f, err := l.fs.OpenReadWrite(path)
	if err != nil {
		return nil, fmt.Errorf("kvtool/segment: open %s: %w", path, err)
	}
	err = f.Preallocate(l.segSize)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("kvtool/segment: reopen %s: %w", path, err)
	}
	return &activeSeg{f: f, path: path, first: r.hdr.first, sum: r.hdrSum, off: r.info.Size, records: r.info.Records}, nil
}

// removeTemps removes leftover temporary files (a segment being created when
// a process stopped): they were never published, so never trusted.
func removeTemps(fsys vfs.FS, dir string) error {
	names, err := fsys.List(dir)
	if err != nil {
		return fmt.Errorf("kvtool/segment: list %s: %w", dir, err)
	}
	removed := false
	for _, n := range names {
		if !format.IsTempName(n) {
			continue
		}
		if err := fsys.Remove(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("kvtool/segment: remove leftover %s: %w", n, err)
		}
		removed = true
	}
	if removed {
		return fsys.SyncDir(dir)
	}
	return nil
}

// dropInterrupted removes the newest segment when it holds no entry and the
// one before it has no valid seal record naming it: a crash came between
// publishing the new segment and sealing the old one (see Log.rotate).
// Nothing is lost: no entry goes into a segment before its predecessor is
// sealed. It returns the names left.
func (l *Log) dropInterrupted(names []string) ([]string, error) {
	n := len(names)
	if n < 2 {
		return names, nil
	}
	newest := filepath.Join(l.dir, names[n-1])
	if empty, err := segEmpty(l.fs, newest, names[n-1]); err != nil || !empty {
		return names, err
	}
	next, _ := format.ParseSegmentName(names[n-1])
	if ok, err := sealedFor(l.fs, l.dir, names[n-2], next); err != nil || ok {
		return names, err
	}
	if err := l.fs.Remove(newest); err != nil {
		return names, fmt.Errorf("kvtool/segment: remove %s, left empty by an interrupted rotation: %w", newest, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return names, fmt.Errorf("kvtool/segment: fsync directory %s: %w", l.dir, err)
	}
	return names[:n-1], nil
}

// sealedFor reports whether segment dir/name is whole and ends with a seal
// record naming next. A sealed segment is normally trimmed to its data, so
// its last bytes are the seal; if they are not, it is read in full.
func sealedFor(fsys vfs.FS, dir, name string, next uint64) (bool, error) {
	path := filepath.Join(dir, name)
	f, err := fsys.Open(path)
	if err != nil {
		return false, fmt.Errorf("kvtool/segment: open %s: %w", path, err)
	}
	size, err := f.Size()
	var tail [markerSize]byte
	if err == nil && size >= headerSize+markerSize {
		_, err = f.ReadAt(tail[:], size-markerSize)
	}
	f.Close()
	if err != nil {
		return false, fmt.Errorf("kvtool/segment: read %s: %w", path, err)
	}
	if string(tail[:]) == string(appendMarker(nil, format.FrameWALSeal, next)) {
		return true, nil
	}
	r, err := analyzeSeg(fsys, dir, name, segRole{tornOK: true})
	if err != nil {
		return false, err
	}
	return r.sealAt >= 0 && r.sealNext == next && len(r.problems) == 0, nil
}
