package segment

import (
	"fmt"
	"path/filepath"

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
	QuarantinePath string      // the quarantine file holding the bytes (see ReadQuarantine)
	FirstLostIndex uint64      // first index of an intact record cut, 0 if none could be decoded
	LastLostIndex  uint64      // last index of an intact record cut, 0 if none could be decoded
	WholeFile      bool        // the whole segment was moved to quarantine (removed)
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
// with its directory entry before the segment is truncated at the cut,
// re-preallocated with zeros and synced. Any other damage is refused with an
// error wrapping ErrNeedsForce (the result still lists the problems) unless
// opts.Force: then the damaged segment is cut at its first problem and every
// later segment is quarantined whole and removed, newest first, so the log
// stays contiguous; a crash part way leaves a log a second Repair finishes.
// With opts.DryRun the result is the same and nothing is written.
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
	case first == len(res)-1 && res[first].torn():
		return out, repairTorn(fsys, res[first], out)
	case !opts.Force:
		return out, fmt.Errorf("%w: %s", ErrNeedsForce, out.Problems[0])
	}
	return out, forceCut(fsys, dir, res, first, out)
}

func repairTorn(fsys vfs.FS, r *segResult, out *RepairResult) error {
	c, err := cutTail(fsys, r, out.DryRun)
	if err != nil {
		return err
	}
	out.Cuts, out.LastIndex = []Cut{c}, r.lastGood
	return nil
}

// forceCut cuts res[first] at its first problem and quarantines every later
// segment whole, newest first.
func forceCut(fsys vfs.FS, dir string, res []*segResult, first int, out *RepairResult) error {
	r := res[first]
	why := r.problems[0]
	var cuts []Cut
	for j := len(res) - 1; j > first; j-- {
		c, err := quarantineWhole(fsys, dir, res[j], why, out.DryRun)
		if err != nil {
			return err
		}
		cuts = append([]Cut{c}, cuts...)
	}
	var c Cut
	var err error
	if r.cutAt < headerSize {
		c, err = quarantineWhole(fsys, dir, r, why, out.DryRun)
	} else {
		c, err = cutTail(fsys, r, out.DryRun)
	}
	if err != nil {
		return err
	}
	out.Cuts, out.LastIndex = append([]Cut{c}, cuts...), r.lastGood
	return nil
}

// cutTail cuts segment r at r.cutAt, keeping the cut bytes in a quarantine
// file first. With dryRun it only says what it would do.
func cutTail(fsys vfs.FS, r *segResult, dryRun bool) (Cut, error) {
	p := r.problems[0]
	for _, q := range r.problems {
		if q.Offset >= r.cutAt {
			p = q
			break
		}
	}
	c := Cut{Path: r.info.Path, Offset: r.cutAt, Kind: p.Kind, Reason: p.Reason}
	f, err := openForCut(fsys, c.Path, dryRun)
	if err != nil {
		return c, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return c, fmt.Errorf("kvtool/segment: %w", err)
	}
	if err := measureCut(&c, f, size, r.lastGood); err != nil {
		return c, err
	}
	dir := filepath.Dir(c.Path)
	if c.QuarantinePath, err = quarantinePath(fsys, dir, r.info.Name, c.Offset); err != nil || dryRun {
		return c, err
	}
	if err := writeQuarantine(fsys, c.QuarantinePath, r.info.Name, f, c.Offset, c.Bytes); err != nil {
		return c, err
	}
	return c, truncateZeroed(f, c.Path, c.Offset, size)
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

// measureCut fills in how many bytes from c.Offset must be kept (up to the
// last nonzero byte) and which intact records (indexes above lastGood) are
// among them.
func measureCut(c *Cut, f vfs.File, size int64, lastGood uint64) error {
	t, err := scanTail(f, c.Path, c.Offset, size, noIndex)
	if err != nil {
		return err
	}
	c.Bytes = t.endNonzero - c.Offset
	for from := c.Offset; from < t.endNonzero; {
		v, err := scanTail(f, c.Path, from, t.endNonzero, lastGood)
		if err != nil || v.validAt < 0 {
			return err
		}
		if c.FirstLostIndex == 0 {
			c.FirstLostIndex = v.validIndex
		}
		c.LastLostIndex, lastGood, from = v.validIndex, v.validIndex, v.validEnd
	}
	return nil
}

// truncateZeroed cuts the file at off and preallocates it back to size, so
// the region after the cut reads as zeros (the end of data), then syncs.
func truncateZeroed(f vfs.File, path string, off, size int64) error {
	err := f.Truncate(off)
	if err == nil {
		err = f.Preallocate(size)
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
func quarantineWhole(fsys vfs.FS, dir string, r *segResult, why Problem, dryRun bool) (Cut, error) {
	c := Cut{Path: r.info.Path, Kind: why.Kind, WholeFile: true,
		Reason: fmt.Sprintf("follows %s at offset %d (%s); removed so the log stays contiguous", filepath.Base(why.Path), why.Offset, why.Kind)}
	if len(r.problems) > 0 && r.problems[0].Offset < headerSize && r.problems[0].Path == why.Path {
		c.Reason = why.Reason
	}
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
	return c, fsys.SyncDir(dir)
}
