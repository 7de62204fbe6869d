package segment

import (
	"fmt"
	"io"
	"math"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

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
// it; newest says whether it is the newest segment, the only one that may
// have a torn tail. The error is for failures to read, never for damage.
func analyzeSeg(fsys vfs.FS, dir, name string, newest bool) (*segResult, error) {
	path := filepath.Join(dir, name)
	first, _ := format.ParseSegmentName(name)
	r := &segResult{info: SegmentInfo{Name: name, Path: path, FirstIndex: first, LastIndex: first - 1}, cutAt: -1}
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
	r.hdr, r.hdrSum, r.hdrOK = s.hdr, s.hdrSum, true
	r.info.Term = s.hdr.term
	if err := r.scanRecords(s, newest); err != nil {
		return nil, err
	}
	r.info.LastIndex, r.info.Size, r.lastTerm = s.last(), s.end, s.term
	return r, nil
}

// scanRecords reads records to the end of the segment, resynchronizing after
// damage at the next intact record so that every problem is reported.
func (r *segResult) scanRecords(s *segReader, newest bool) error {
	for {
		e, off, err := s.next()
		switch {
		case err == nil:
			r.info.Records++
			continue
		case err == io.EOF:
			return r.checkEnd(s, newest)
		}
		ce := format.AsCorruption(err)
		if ce == nil {
			return err
		}
		r.cut(off, s.last())
		if s.badRecord {
			r.add(Corruption, off, ce.Reason)
			s.skipBad(e)
			continue
		}
		done, err := r.damagedFrame(s, off, ce.Reason, newest)
		if done || err != nil {
			return err
		}
	}
}

// damagedFrame classifies a frame that failed its checks at off: if an
// intact record follows anywhere later, it is corruption and the reader
// resumes there; otherwise the rest of the file is a torn tail (newest
// segment) or corruption (older segment), and the scan is done.
func (r *segResult) damagedFrame(s *segReader, off int64, reason string, newest bool) (bool, error) {
	t, err := scanTail(s.f, s.path, off+1, s.size, s.last())
	if err != nil {
		return true, err
	}
	if t.validAt >= 0 {
		r.add(Corruption, off, fmt.Sprintf("%s (an intact record, index %d, follows at offset %d)", reason, t.validIndex, t.validAt))
		s.seek(t.validAt, t.validIndex)
		return false, nil
	}
	if newest {
		r.add(TornTail, off, reason+" (torn write at the end of the newest segment)")
	} else {
		r.add(Corruption, off, reason+" (in a sealed segment)")
	}
	return true, nil
}

// checkEnd checks that everything after the end of data (s.end) is zero.
func (r *segResult) checkEnd(s *segReader, newest bool) error {
	eod := s.end
	t, err := scanTail(s.f, s.path, eod, s.size, s.last())
	if err != nil || t.firstNonzero < 0 {
		return err
	}
	r.cut(eod, s.last())
	switch {
	case t.validAt >= 0:
		r.add(Corruption, eod, fmt.Sprintf("zeroed frame header at the end of data hides an intact record (index %d) at offset %d", t.validIndex, t.validAt))
		s.seek(t.validAt, t.validIndex)
		return r.scanRecords(s, newest)
	case newest:
		r.add(TornTail, t.firstNonzero, fmt.Sprintf("nonzero bytes after the end of data at offset %d (torn write at the end of the newest segment)", eod))
	default:
		r.add(Garbage, t.firstNonzero, fmt.Sprintf("nonzero bytes after the end of data at offset %d", eod))
	}
	return nil
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
	var done int64
	res := make([]*segResult, 0, len(names))
	for i, name := range names {
		r, err := analyzeSeg(fsys, dir, name, i == len(names)-1)
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
