package segment

import (
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// RepairOptions configure Repair.
type RepairOptions struct {
	DryRun bool // report what would be cut, write nothing
	Force  bool // also cut corruption (not only a torn tail), quarantining every later segment
}

// Cut is one range of bytes a repair removed (or, in a dry run, would
// remove) from a segment. The bytes are kept in QuarantinePath.
type Cut struct {
	Path           string      // the segment cut
	Offset         int64       // where the cut starts; 0 with WholeFile
	Bytes          int64       // bytes quarantined (trailing zeros of the preallocated space trimmed)
	Kind           ProblemKind // the problem that made the cut necessary
	Reason         string      // why, for a person
	QuarantinePath string      // the quarantine file holding the bytes (see ReadQuarantine); "" when there were none
	// FirstLostIndex and LastLostIndex are the log indexes this cut took
	// out of the log (0 and 0: none), damaged records included: the cuts of
	// one repair list, between them, exactly the indexes from the log's new
	// end to its old one.
	FirstLostIndex uint64
	LastLostIndex  uint64
	// MissingFrom, if not 0, says that the end of the log was gone before
	// the repair (the newest segment was sealed and its successor is
	// missing, or it was truncated): entries from this index on, if there
	// were any, are lost, and no file says how many.
	MissingFrom uint64
	WholeFile   bool // the whole segment was moved to quarantine (removed)
}

// RepairResult says what Repair did (or, with DryRun, would do).
type RepairResult struct {
	Problems  []Problem // what was found (as Verify reports it)
	Cuts      []Cut     // what was cut, oldest segment and offset first
	LastIndex uint64    // last index of the log after the repair
	DryRun    bool
}

// Repair makes the log in dir sound again, keeping every byte it removes.
//
// A torn tail of the newest segment (the only damage a crash can cause) is
// cut: its bytes are copied into a quarantine file named
// format.QuarantineName(segment, offset), which is synced and published
// with its directory entry before the segment is zeroed from the cut on
// (its size stays its preallocated size) and synced. An empty newest
// segment left by an interrupted rotation goes with it. Any other damage
// is refused with an error wrapping ErrNeedsForce (the result still lists
// the problems) unless opts.Force: then the damaged segment is cut at its
// first problem (or at its seal record, which would name a segment that is
// gone) and every later segment is quarantined whole and removed, newest
// first, so the log stays contiguous; a crash part way leaves a log a
// second Repair finishes. With opts.DryRun the result is the same and
// nothing is written.
func Repair(fsys vfs.FS, dir string, opts RepairOptions) (*RepairResult, error) {
	res, err := analyzeLog(fsys, dir, nil)
	if err != nil {
		return nil, err
	}
	out := &RepairResult{DryRun: opts.DryRun}
	first := -1 // the oldest segment with a problem
	for i, r := range res {
		out.Problems = append(out.Problems, r.problems...)
		if first < 0 && len(r.problems) > 0 {
			first = i
		}
		out.LastIndex = r.info.LastIndex
	}
	switch {
	case first < 0:
		return out, nil
	case len(out.Problems) == 1 && res[first].torn():
		return out, repairTorn(fsys, dir, res, first, out)
	case !opts.Force:
		return out, fmt.Errorf("%w: %s", ErrNeedsForce, out.Problems[0])
	}
	return out, forceCut(fsys, dir, res, first, out)
}

// repairTorn cuts the torn tail of res[first]. If that is not the newest
// segment, the newest holds no entry (see tailFrom) and is quarantined too.
func repairTorn(fsys vfs.FS, dir string, res []*segResult, first int, out *RepairResult) error {
	var cuts []Cut
	if first < len(res)-1 {
		empty := res[len(res)-1]
		c, err := quarantineWhole(fsys, dir, empty, out.DryRun, TornTail,
			"holds no entry: a crash interrupted the rotation that created it, before the segment before it was sealed")
		if err != nil {
			return err
		}
		cuts = append(cuts, c)
	}
	c, err := cutTail(fsys, res[first], out.DryRun)
	if err != nil {
		return err
	}
	out.Cuts, out.LastIndex = append([]Cut{c}, cuts...), res[first].lastGood
	return nil
}

// forceCut cuts res[first] at its first problem and quarantines every later
// segment whole, newest first.
func forceCut(fsys vfs.FS, dir string, res []*segResult, first int, out *RepairResult) error {
	r := res[first]
	why := r.problems[0]
	reason := fmt.Sprintf("follows %s at offset %d (%s); removed so the log stays contiguous", filepath.Base(why.Path), why.Offset, why.Kind)
	var cuts []Cut
	for j := len(res) - 1; j > first; j-- {
		c, err := quarantineWhole(fsys, dir, res[j], out.DryRun, why.Kind, reason)
		if err != nil {
			return err
		}
		cuts = append([]Cut{c}, cuts...)
	}
	var c Cut
	var err error
	if r.cutAt < headerSize {
		c, err = quarantineWhole(fsys, dir, r, out.DryRun, why.Kind, why.Reason)
		out.LastIndex = r.info.FirstIndex - 1
		if first > 0 {
			out.LastIndex = res[first-1].info.LastIndex
		}
	} else {
		c, err = cutTail(fsys, r, out.DryRun)
		out.LastIndex = r.lastGood
	}
	if err != nil {
		return err
	}
	out.Cuts = append([]Cut{c}, cuts...)
	setLost(out.Cuts, res[first:])
	if r.cutAt < headerSize && first > 0 && res[first-1].sealAt >= 0 {
		c, err := unseal(fsys, res[first-1], out.DryRun)
		if err != nil {
			return err
		}
		out.Cuts = append([]Cut{c}, out.Cuts...)
	}
	return nil
}

// unseal cuts the seal record of r, which a forced repair makes the newest
// segment again: the seal names a segment the repair removed.
func unseal(fsys vfs.FS, r *segResult, dryRun bool) (Cut, error) {
	u := *r
	u.cutAt, u.lastGood = r.sealAt, r.info.LastIndex
	u.problems = []Problem{{Path: r.info.Path, Offset: r.sealAt, Kind: Gap,
		Reason: fmt.Sprintf("seal record naming %s, which the repair removed: the segment is the newest again", format.SegmentName(r.sealNext))}}
	c, err := cutTail(fsys, &u, dryRun)
	c.MissingFrom = 0
	return c, err
}

// setLost fills in the indexes each cut takes out of the log: cuts[k] is of
// res[k]. A segment held the indexes from its first (or, for the first cut,
// from the one after its last good record) to the highest one known of it:
// the next segment's first less one, or the highest index any intact frame
// or whole damaged record in it vouches for. So the damaged record itself
// is listed, and the ranges run on from one cut to the next.
func setLost(cuts []Cut, res []*segResult) {
	lo := res[0].lastGood + 1
	for k, r := range res {
		hi := r.maxIndex
		if k+1 < len(res) && res[k+1].hdrOK && res[k+1].hdr.first > 0 {
			hi = max(hi, res[k+1].hdr.first-1)
		}
		if k > 0 {
			lo = max(lo, r.info.FirstIndex)
		}
		c := &cuts[k]
		c.FirstLostIndex, c.LastLostIndex = 0, 0
		if hi >= lo {
			c.FirstLostIndex, c.LastLostIndex = lo, hi
			lo = hi + 1
		}
		c.MissingFrom = r.missingFrom()
		if !r.hdrOK && k == len(res)-1 && c.FirstLostIndex == 0 {
			c.MissingFrom = lo // its header is damaged: which entries it held is unknown
		}
	}
}

// missingFrom is the first index of the log's end that was gone before any
// repair, for a newest segment that is sealed or truncated; 0 if none.
func (r *segResult) missingFrom() uint64 {
	for _, p := range r.problems {
		switch {
		case p.Kind == Gap && p.Offset == r.sealAt:
			return r.sealNext
		case p.Kind == Truncated && !(r.closed && !r.endDamaged):
			return r.info.LastIndex + 1
		}
	}
	return 0
}

// cutTail cuts segment r at r.cutAt (or at its seal record, if that comes
// first: the segment becomes the newest, and a seal would name a segment
// that is gone), keeping the cut bytes in a quarantine file first. With
// dryRun it only says what it would do.
func cutTail(fsys vfs.FS, r *segResult, dryRun bool) (Cut, error) {
	p := r.problems[0]
	for _, q := range r.problems {
		if q.Offset >= r.cutAt {
			p = q
			break
		}
	}
	at := r.cutAt
	if r.sealAt >= 0 {
		at = min(at, r.sealAt)
	}
	c := Cut{Path: r.info.Path, Offset: at, Kind: p.Kind, Reason: p.Reason, MissingFrom: r.missingFrom()}
	f, err := openForCut(fsys, c.Path, dryRun)
	if err != nil {
		return c, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return c, fmt.Errorf("kvtool/segment: %w", err)
	}
	if err := measureCut(&c, f, size); err != nil {
		return c, err
	}
	if dryRun {
		c.QuarantinePath, err = quarantinePath(fsys, filepath.Dir(c.Path), r.info.Name, c.Offset)
		return c, err
	}
	if c.Bytes > 0 {
		if c.QuarantinePath, err = quarantinePath(fsys, filepath.Dir(c.Path), r.info.Name, c.Offset); err != nil {
			return c, err
		}
		if err := writeQuarantine(fsys, c.QuarantinePath, r.info.Name, f, c.Offset, c.Bytes); err != nil {
			return c, err
		}
	}
	return c, zeroFrom(f, c.Path, c.Offset, c.Bytes, max(size, r.prealloc))
}

func openForCut(fsys vfs.FS, path string, dryRun bool) (vfs.File, error) {
	open := fsys.OpenReadWrite
	if dryRun {
		open = fsys.Open
	}
	f, err := open(path)
	if err != nil {
		return nil, fmt.Errorf("kvtool/segment: open %s: %w", path, err)
	}
	return f, nil
}

// measureCut fills in how many bytes from c.Offset must be kept: up to the
// last nonzero byte.
func measureCut(c *Cut, f vfs.File, size int64) error {
	t, err := scanTail(f, c.Path, c.Offset, size, noIndex)
	if err != nil {
		return err
	}
	c.Bytes = t.endNonzero - c.Offset
	return nil
}

// zeroFrom makes the n bytes at off read as zeros (the end of data) in a
// file that must be size bytes, and syncs. It grows the file first and
// writes zeros rather than truncating, so the file is never shorter than
// its preallocation (which would read as a truncation), and a crash part
// way leaves either the damage, which a second cut finds again, or what a
// torn write leaves, which Open cuts.
func zeroFrom(f vfs.File, path string, off, n, size int64) error {
	err := f.Preallocate(size)
	zeros := make([]byte, min(n, 1<<20))
	for done := int64(0); err == nil && done < n; {
		k := min(n-done, int64(len(zeros)))
		_, err = f.WriteAt(zeros[:k], off+done)
		done += k
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("kvtool/segment: cut %s at offset %d: %w", path, off, err)
	}
	return nil
}

// quarantineWhole moves segment r to a quarantine file and removes it.
func quarantineWhole(fsys vfs.FS, dir string, r *segResult, dryRun bool, kind ProblemKind, reason string) (Cut, error) {
	c := Cut{Path: r.info.Path, Kind: kind, WholeFile: true, Reason: reason, MissingFrom: r.missingFrom()}
	if r.info.Records > 0 {
		c.FirstLostIndex, c.LastLostIndex = r.info.FirstIndex, r.info.LastIndex
	}
	f, err := openForCut(fsys, c.Path, true)
	if err != nil {
		return c, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return c, fmt.Errorf("kvtool/segment: %w", err)
	}
	t, err := scanTail(f, c.Path, 0, size, noIndex)
	if err != nil {
		return c, err
	}
	c.Bytes = t.endNonzero
	if c.QuarantinePath, err = quarantinePath(fsys, dir, r.info.Name, 0); err != nil || dryRun {
		return c, err
	}
	if err := writeQuarantine(fsys, c.QuarantinePath, r.info.Name, f, 0, c.Bytes); err != nil {
		return c, err
	}
	if err := fsys.Remove(c.Path); err != nil {
		return c, fmt.Errorf("kvtool/segment: remove %s: %w", c.Path, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return c, fmt.Errorf("kvtool/segment: fsync directory %s: %w", dir, err)
	}
	return c, nil
}
