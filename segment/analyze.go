package segment

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// segRole says where a segment stands in its log, which decides what its
// end may look like.
type segRole struct {
	// last is set for the newest file: it must not be sealed (a seal names
	// a next segment), and must be at least as large as it was
	// preallocated.
	last bool
	// tornOK is set for a segment that may end in a torn write and without
	// a seal record: the newest one, and the one before it when the newest
	// holds no entry (a crash interrupted a rotation; see tailFrom).
	tornOK bool
}

// segResult is what analyzing one segment found.
type segResult struct {
	info     SegmentInfo
	hdr      segHeader
	hdrSum   uint64
	hdrOK    bool
	problems []Problem
	// cutAt is where a forced repair cuts the segment: the offset of its
	// first problem (0 if its header is damaged or it does not link to its
	// predecessor), or -1 if it has none.
	cutAt int64
	// lastGood is the index of the last good record before cutAt.
	lastGood uint64
	lastTerm uint64 // term of the last good record (or of the header)
	size     int64  // bytes in the file
	prealloc int64  // the size it was preallocated to (segment info record); 0 if unknown
	sealAt   int64  // offset of the seal record, -1 if none
	sealNext uint64 // the first index of the next segment, named by the seal
	closed   bool   // the data ends with a clean-shutdown record
	// maxIndex is the highest index the segment is known to have held:
	// from its intact records and markers, and a whole record that is
	// damaged (0 if none).
	maxIndex   uint64
	endDamaged bool // the scan ended on damage (so a missing seal is no news)
}

func (r *segResult) link() link { return link{r.hdr.first, r.hdrSum} }

// torn reports whether the segment's only problem is a torn tail.
func (r *segResult) torn() bool {
	return len(r.problems) == 1 && r.problems[0].Kind == TornTail
}

func (r *segResult) add(kind ProblemKind, off int64, reason string) {
	r.problems = append(r.problems, Problem{Path: r.info.Path, Offset: off, Kind: kind, Reason: reason})
}

// cut records the first place a forced repair would cut.
func (r *segResult) cut(off int64, lastGood uint64) {
	if r.cutAt < 0 {
		r.cutAt, r.lastGood = off, lastGood
	}
}

// analyzeSeg reads the whole segment dir/name and records every problem in
// it; role says where it stands in the log. The error is for failures to
// read, never for damage.
func analyzeSeg(fsys vfs.FS, dir, name string, role segRole) (*segResult, error) {
	path := filepath.Join(dir, name)
	first, _ := format.ParseSegmentName(name)
	r := &segResult{info: SegmentInfo{Name: name, Path: path, FirstIndex: first, LastIndex: first - 1}, cutAt: -1, sealAt: -1}
	f, err := fsys.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kvtool/segment: open %s: %w", path, err)
	}
	defer f.Close()
	s, err := newSegReader(f, path, name, nil)
	if ce := format.AsCorruption(err); ce != nil {
		r.add(Corruption, ce.Offset, ce.Reason)
		r.cut(0, first-1)
		return r, nil
	} else if err != nil {
		return nil, err
	}
	r.hdr, r.hdrSum, r.hdrOK, r.size = s.hdr, s.hdrSum, true, s.size
	r.info.Term = s.hdr.term
	if err := r.scanRecords(s, role); err != nil {
		return nil, err
	}
	r.info.LastIndex, r.info.Size, r.lastTerm = s.last(), s.end, s.term
	r.prealloc, r.sealAt, r.sealNext, r.closed = s.prealloc, s.sealAt, s.sealNext, s.closed
	if role.last && s.sealAt >= 0 {
		// The next segment its seal names, missing from the listing,
		// exists now: a writer rotated while the directory was read (a
		// verify beside a running server), not a lost end of the log.
		if _, err := fsys.Stat(filepath.Join(dir, format.SegmentName(s.sealNext))); err == nil {
			role.last = false
		}
	}
	r.checkShape(s, role)
	return r, nil
}

// scanRecords reads records to the end of the segment, resynchronizing after
// damage at the next intact record so that every problem is reported.
func (r *segResult) scanRecords(s *segReader, role segRole) error {
	for {
		e, err := s.next()
		off := s.at
		switch {
		case err == nil:
			r.info.Records++
			r.maxIndex = max(r.maxIndex, e.Index)
			continue
		case err == io.EOF:
			return r.checkEnd(s, role)
		}
		ce := format.AsCorruption(err)
		if ce == nil {
			return err
		}
		if role.last && !errors.Is(err, ErrBadRecord) && appendedAt(s, off) {
			return nil
		}
		r.cut(off, s.last())
		if errors.Is(err, ErrBadRecord) {
			r.add(Corruption, off, ce.Reason)
			if e.Index != 0 { // an intact record frame took the next slot
				r.maxIndex = max(r.maxIndex, s.last()+1)
			}
			s.skipBad(e)
			continue
		}
		done, err := r.damagedFrame(s, off, ce.Reason, role)
		if done || err != nil {
			return err
		}
	}
}

// damagedFrame classifies a frame that failed its checks at off: if an
// intact frame follows anywhere later, it is corruption and the reader
// resumes there; otherwise it is a torn tail if the segment may have one
// and the frame is what a torn write leaves (see tornFrame), and
// corruption if not; then the scan is done.
func (r *segResult) damagedFrame(s *segReader, off int64, reason string, role segRole) (bool, error) {
	t, err := scanTail(s.f, s.path, off+1, s.size, s.last())
	if err != nil {
		return true, err
	}
	if t.validAt >= 0 {
		r.add(Corruption, off, fmt.Sprintf("%s (an intact frame, index %d, follows at offset %d)", reason, t.validIndex, t.validAt))
		r.maxIndex = max(r.maxIndex, s.last()+1)
		s.seek(t.validAt, t.validIndex)
		return false, nil
	}
	r.endDamaged = true
	if !role.tornOK {
		r.add(Corruption, off, reason+" (in an older segment, which no crash leaves torn)")
		return true, r.wholeDamaged(s, off)
	}
	torn, err := tornFrame(s.f, s.path, off, s.size)
	switch {
	case err != nil:
		return true, err
	case torn:
		r.add(TornTail, off, reason+" (torn write at the end of the newest segment)")
		return true, nil
	}
	r.add(Corruption, off, reason+" (every byte of the frame is there, so it was damaged after it was written: not a torn write)")
	return true, r.wholeDamaged(s, off)
}

// wholeDamaged counts the damaged frame at off, which no crash could leave,
// as the record after the last good one, unless its type says it is a
// marker.
func (r *segResult) wholeDamaged(s *segReader, off int64) error {
	var hdr [format.FrameHeaderSize]byte
	if _, err := s.f.ReadAt(hdr[:], off); err != nil && err != io.EOF {
		return fmt.Errorf("kvtool/segment: %s: read at offset %d: %w", s.path, off, err)
	}
	if !isMarkerType(format.FrameType(hdr[12])) {
		r.maxIndex = max(r.maxIndex, s.last()+1)
	}
	return nil
}

// appendedAt reports whether an intact frame now starts at off in the
// newest segment, where the scan just read the end of its data or a frame
// that failed its checks: a writer appended it while the segment was read
// (verify beside a running server), so the data read ends there and
// nothing is damaged. In a log no one writes the bytes read again are the
// ones that failed, so damage is still reported.
func appendedAt(s *segReader, off int64) bool {
	var hdr [format.FrameHeaderSize]byte
	if _, err := s.f.ReadAt(hdr[:], off); err != nil || !maybeFrame(hdr[:]) {
		return false
	}
	size, err := s.f.Size()
	if err != nil {
		return false
	}
	var payload []byte
	_, n, err := intactAt(s.f, s.path, hdr[:], off, size, &payload)
	return err == nil && n > 0
}

// checkEnd checks that everything after the end of data (s.end) is zero.
func (r *segResult) checkEnd(s *segReader, role segRole) error {
	eod := s.end
	t, err := scanTail(s.f, s.path, eod, s.size, s.last())
	if err != nil || t.firstNonzero < 0 {
		return err
	}
	if role.last && appendedAt(s, eod) {
		return nil
	}
	r.cut(eod, s.last())
	r.endDamaged = t.validAt < 0
	switch {
	case t.validAt >= 0:
		r.add(Corruption, eod, fmt.Sprintf("zeroed frame header at the end of data hides an intact frame (index %d) at offset %d", t.validIndex, t.validAt))
		s.seek(t.validAt, t.validIndex)
		return r.scanRecords(s, role)
	case role.tornOK:
		r.add(TornTail, t.firstNonzero, fmt.Sprintf("nonzero bytes after the end of data at offset %d (torn write at the end of the newest segment)", eod))
	default:
		r.add(Garbage, t.firstNonzero, fmt.Sprintf("nonzero bytes after the end of data at offset %d", eod))
	}
	return nil
}

// checkShape checks how the segment ends for its place in the log: the
// newest must not be sealed (its seal names a next segment, so that one is
// missing) and must not be shorter than it was preallocated (it was
// truncated); an older one written with markers must end with a seal.
func (r *segResult) checkShape(s *segReader, role segRole) {
	if s.sealAt >= 0 {
		r.maxIndex = max(r.maxIndex, s.sealNext-1)
	}
	switch {
	case s.sealAt >= 0 && role.last:
		r.cut(s.sealAt, s.last())
		r.add(Gap, s.sealAt, fmt.Sprintf("the segment is sealed and its seal record names %s as the next segment, which is missing: the log's entries from index %d on are gone",
			format.SegmentName(s.sealNext), s.sealNext))
	case s.sealAt < 0 && !role.tornOK && s.prealloc > 0 && !r.endDamaged:
		r.cut(s.end, s.last())
		r.add(Corruption, s.end, fmt.Sprintf("the segment ends at index %d without the seal record that every rotation writes: its end was cut off or zeroed", s.last()))
	}
	if role.last && s.sealAt < 0 && s.prealloc > 0 && s.size < s.prealloc {
		r.cut(s.end, s.last())
		lost := fmt.Sprintf("any entries after index %d are gone", s.last())
		if s.closed && !r.endDamaged {
			lost = "but its data ends with the clean-shutdown record, so no entry is missing"
		}
		r.add(Truncated, s.size, fmt.Sprintf("the file is %d bytes, shorter than the %d it was preallocated to: it was truncated, %s",
			s.size, s.prealloc, lost))
	}
}

// walNames returns the segment names in dir, oldest first.
func walNames(fsys vfs.FS, dir string) ([]string, error) {
	all, err := fsys.List(dir)
	if err != nil {
		return nil, fmt.Errorf("kvtool/segment: list %s: %w", dir, err)
	}
	var names []string
	for _, n := range all {
		if _, ok := format.ParseSegmentName(n); ok {
			names = append(names, n)
		}
	}
	return names, nil // fixed-width hex names sort in index order
}

// analyzeLog analyzes every segment of dir in order, including the links
// between consecutive segments. progress, if set, is called after each
// segment with the bytes done and the total.
func analyzeLog(fsys vfs.FS, dir string, progress func(done, total int64)) ([]*segResult, error) {
	names, err := walNames(fsys, dir)
	if err != nil {
		return nil, err
	}
	sizes, total, err := fileSizes(fsys, dir, names)
	if err != nil {
		return nil, err
	}
	tail, err := tailFrom(fsys, dir, names)
	if err != nil {
		return nil, err
	}
	var done int64
	res := make([]*segResult, 0, len(names))
	for i, name := range names {
		r, err := analyzeSeg(fsys, dir, name, segRole{last: i == len(names)-1, tornOK: i >= tail})
		if err != nil {
			return nil, err
		}
		if i > 0 {
			checkLinkTo(r, res[i-1])
		}
		res = append(res, r)
		done += sizes[i]
		if progress != nil {
			progress(done, total)
		}
	}
	return res, nil
}

// checkLinkTo records a gap or a chain break between prev and r.
func checkLinkTo(r, prev *segResult) {
	if !r.hdrOK || !prev.hdrOK {
		return // the damaged header is reported already
	}
	kind, err := checkLink(&r.hdr, r.info.Path, prev.link(), prev.info.LastIndex)
	if err == nil {
		return
	}
	p := Problem{Path: r.info.Path, Offset: 0, Kind: kind, Reason: format.AsCorruption(err).Reason}
	r.problems = append([]Problem{p}, r.problems...)
	r.cutAt, r.lastGood = 0, r.info.FirstIndex-1
}

func fileSizes(fsys vfs.FS, dir string, names []string) ([]int64, int64, error) {
	sizes := make([]int64, len(names))
	var total int64
	for i, n := range names {
		fi, err := fsys.Stat(filepath.Join(dir, n))
		if err != nil {
			return nil, 0, fmt.Errorf("kvtool/segment: %w", err)
		}
		sizes[i] = fi.Size()
		total += sizes[i]
	}
	return sizes, total, nil
}

// noIndex makes scanTail look for nonzero bytes only.
const noIndex = math.MaxUint64

// tailFrom returns the index in names of the first segment that may end in
// a torn write: the newest, or the one before it when the newest holds no
// entry. A rotation publishes the next segment before it writes the seal
// record into the old one, so a crash between the two leaves an empty
// newest segment after one that is unsealed or has a torn seal; nothing is
// lost then, and Open removes the empty segment.
func tailFrom(fsys vfs.FS, dir string, names []string) (int, error) {
	n := len(names)
	if n < 2 {
		return n - 1, nil
	}
	empty, err := segEmpty(fsys, filepath.Join(dir, names[n-1]), names[n-1])
	if err != nil || !empty {
		return n - 1, err
	}
	return n - 2, nil
}

// segEmpty reports whether the segment at path holds no entry: its first
// frames are markers at most, then the end of data. Damage is not an error
// here (the segment is then not empty; its analysis reports the damage).
func segEmpty(fsys vfs.FS, path, name string) (bool, error) {
	s, err := openSeg(fsys, path, name, nil)
	if format.AsCorruption(err) != nil {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer s.close()
	_, err = s.next()
	if err != nil && err != io.EOF && format.AsCorruption(err) == nil {
		return false, err
	}
	return err == io.EOF, nil
}
