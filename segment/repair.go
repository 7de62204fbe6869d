package segment

import "github.com/kvtool/kvtool/vfs"

// RepairOptions configure Repair.
type RepairOptions struct {
	DryRun bool // report what would be cut, write nothing
	Force  bool // also cut corruption (not only a torn tail), quarantining the rest
}

// Cut is one range of bytes a repair removed (or would remove) from a segment.
type Cut struct {
	Path           string      // segment cut
	Offset         int64       // where the cut starts
	Bytes          int64       // bytes kept in quarantine (trailing zeros trimmed)
	Kind           ProblemKind // why
	QuarantinePath string      // where the bytes are kept
	FirstLostIndex uint64      // first index lost, 0 if none could be decoded
	LastLostIndex  uint64      // last index lost, 0 if none could be decoded
	WholeFile      bool        // the whole segment was moved to quarantine
}

// RepairResult says what Repair did (or, with DryRun, would do).
type RepairResult struct {
	Cuts      []Cut
	LastIndex uint64 // last index of the log after the repair
	DryRun    bool
}

// Repair cuts a torn tail of the newest segment in dir, keeping the cut bytes
// in a quarantine file. Other damage is refused (ErrNeedsForce) unless
// opts.Force.
func Repair(fsys vfs.FS, dir string, opts RepairOptions) (*RepairResult, error) {
	return nil, errNotImplemented
}
