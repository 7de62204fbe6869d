package segment

import (
	"fmt"

	"github.com/kvtool/kvtool/vfs"
)

// ProblemKind classifies a problem found by Verify.
type ProblemKind int

// Problem kinds.
const (
	Corruption ProblemKind = iota + 1 // bytes no writer could have produced
	TornTail                          // the newest segment ends mid-record
	Gap                               // indexes are not contiguous between segments
	ChainBreak                        // a header does not link to its predecessor
	Garbage                           // nonzero bytes after the end of data of an older segment
	Truncated                         // the newest segment is shorter than it was preallocated
)

// String returns the kind's name as reports print it ("torn-tail").
func (k ProblemKind) String() string {
	switch k {
	case Corruption:
		return "corruption"
	case TornTail:
		return "torn-tail"
	case Gap:
		return "gap"
	case ChainBreak:
		return "chain-break"
	case Garbage:
		return "garbage"
	case Truncated:
		return "truncated"
	}
	return "problem"
}

// MarshalText makes a kind appear by name in JSON.
func (k ProblemKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Problem is one thing Verify found wrong.
type Problem struct {
	Path   string      // the segment
	Offset int64       // byte offset of the damaged header, frame or byte
	Kind   ProblemKind // what kind of damage
	Reason string      // what was wrong, for a person
}

// String describes the problem for a person: file, kind, offset, reason.
func (p Problem) String() string {
	return fmt.Sprintf("%s: %s at offset %d: %s", p.Path, p.Kind, p.Offset, p.Reason)
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Progress, if set, is called with bytes done out of total.
	Progress func(done, total int64)
}

// Report is what Verify found.
type Report struct {
	Segments   []SegmentInfo // every segment, oldest first, counting its intact records
	FirstIndex uint64        // first index of the oldest segment
	LastIndex  uint64        // last good index of the newest segment
	Records    int64         // good records read
	Problems   []Problem     // every problem, in log order; empty when the log is sound
	// Closed reports that the newest segment ends with the record a clean
	// shutdown writes: nothing was being written when the log stopped.
	Closed bool
}

// OK reports whether Verify found no problem.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Verify reads every segment in dir and reports every problem, each with its
// file and offset: damaged headers and frames, wrong records, gaps and
// header chain breaks between segments, nonzero bytes after the end of data,
// an older segment without its seal record, a newest segment that is sealed
// (its successor is missing) or shorter than its preallocation
// (Truncated), and a torn tail of the newest segment (TornTail, distinct
// from Corruption). It opens files read-only and never modifies a byte. The
// error is for failures to read, never for damage.
func Verify(fsys vfs.FS, dir string, opts VerifyOptions) (*Report, error) {
	res, err := analyzeLog(fsys, dir, opts.Progress)
	if err != nil {
		return nil, err
	}
	rep := &Report{Segments: make([]SegmentInfo, 0, len(res))}
	for i, r := range res {
		if i == 0 {
			rep.FirstIndex = r.info.FirstIndex
		}
		rep.Segments = append(rep.Segments, r.info)
		rep.LastIndex = r.info.LastIndex
		rep.Records += r.info.Records
		rep.Problems = append(rep.Problems, r.problems...)
		rep.Closed = r.closed
	}
	return rep, nil
}

// List scans every segment in dir and describes them, oldest first. Damage
// is not an error here: each description counts the intact records of its
// segment, and Verify reports the damage. A segment whose header is damaged
// is described by its name only.
func List(fsys vfs.FS, dir string) ([]SegmentInfo, error) {
	rep, err := Verify(fsys, dir, VerifyOptions{})
	if err != nil {
		return nil, err
	}
	return rep.Segments, nil
}
