package segment

import "github.com/kvtool/kvtool/vfs"

// ProblemKind classifies a problem found by Verify.
type ProblemKind int

// Problem kinds.
const (
	Corruption ProblemKind = iota + 1 // bytes no writer could have produced
	TornTail                          // the newest segment ends mid-record
	Gap                               // indexes are not contiguous between segments
	ChainBreak                        // a header does not link to its predecessor
	Foreign                           // a segment of another store
	Garbage                           // nonzero bytes after the end of data
	Unknown                           // a file that is neither segment, quarantine nor temp
)

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
	case Foreign:
		return "foreign"
	case Garbage:
		return "garbage"
	case Unknown:
		return "unknown-file"
	}
	return "problem"
}

// Problem is one thing Verify found wrong.
type Problem struct {
	Path   string
	Offset int64
	Kind   ProblemKind
	Reason string
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Progress, if set, is called with bytes done out of total.
	Progress func(done, total int64)
}

// Report is what Verify found.
type Report struct {
	Segments              []SegmentInfo
	FirstIndex, LastIndex uint64
	Records               int64
	Problems              []Problem
}

// Verify reads every segment in dir and reports every problem; it never
// modifies a byte. The error is for failures to read, not for damage.
func Verify(fsys vfs.FS, dir string, opts VerifyOptions) (*Report, error) {
	return nil, errNotImplemented
}
