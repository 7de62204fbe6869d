package segment

import "errors"

var (
	// ErrClosed is returned by a *Log method called after Close.
	ErrClosed = errors.New("kvtool/segment: log is closed")
	// ErrFailed is wrapped by every error a log returns once a write or an
	// fsync has failed: the log stops there and acknowledges nothing more.
	ErrFailed = errors.New("kvtool/segment: log failed after an I/O error")
	// ErrTornTail is wrapped by Open when the newest segment ends in a torn
	// (partially written) record and Options.RepairTail is not set.
	ErrTornTail = errors.New("kvtool/segment: torn tail in the newest segment (run repair)")
	// ErrTooLarge is returned by Append and Enqueue for data that does not
	// fit in one frame.
	ErrTooLarge = errors.New("kvtool/segment: record too large")
	// ErrStoreMismatch is wrapped when a segment belongs to another store.
	ErrStoreMismatch = errors.New("kvtool/segment: segment belongs to another store")
	// ErrBadType is returned by Append and Enqueue for a frame type that is
	// not a WAL entry type.
	ErrBadType = errors.New("kvtool/segment: not a WAL entry type")
	// ErrNeedsForce is wrapped by Repair when it finds damage other than a
	// torn tail and RepairOptions.Force is not set.
	ErrNeedsForce = errors.New("kvtool/segment: damage other than a torn tail; repair needs force")
	// ErrNoSpace is wrapped (with the file system's error, the directory
	// and the bytes needed) by Append, Enqueue and Rotate when a record
	// needs the next segment and the disk has no room to preallocate it.
	// Nothing was written: the log has not failed, and takes records again
	// once the space exists (it retries by itself).
	ErrNoSpace = errors.New("kvtool/segment: no space for the next WAL segment")
)
