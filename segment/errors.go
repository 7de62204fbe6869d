package segment

import (
	"errors"

	"github.com/kvtool/kvtool/format"
)

var (
	// ErrClosed is returned by a *Log method called after Close.
	ErrClosed = errors.New("kvtool/segment: log is closed")
	// ErrFailed is wrapped by every error a log returns once a write or an
	// fsync has failed: the log stops there and acknowledges nothing more.
	ErrFailed = errors.New("kvtool/segment: log failed after an I/O error")
	// ErrTornTail is wrapped, with the *format.CorruptionError that says
	// where, by Open when the newest segment ends in a torn (partially
	// written) record and Options.RepairTail is not set, and by
	// Reader.Next at such a tail.
	ErrTornTail = errors.New("kvtool/segment: torn tail in the newest segment (run repair)")
	// ErrBadRecord is matched, with format.ErrCorruption, by the error for
	// an intact frame (its checksum holds) whose record or marker is wrong
	// where it stands: an index out of order, a term going down, a record
	// after the seal. No torn write leaves one, so it is never ErrTornTail.
	// The message is the *format.CorruptionError's own.
	ErrBadRecord = errors.New("kvtool/segment: intact frame holds a wrong record")
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

// damageError is a *format.CorruptionError classified by a sentinel:
// errors.Is matches both kind and format.ErrCorruption, errors.As finds
// the *format.CorruptionError, and the message is the corruption's own.
type damageError struct {
	kind error
	*format.CorruptionError
}

func (e *damageError) Unwrap() []error { return []error{e.kind, e.CorruptionError} }

// badRecord classifies err, met in an intact frame, as ErrBadRecord if it
// is corruption.
func badRecord(err error) error {
	if ce := format.AsCorruption(err); ce != nil {
		return &damageError{kind: ErrBadRecord, CorruptionError: ce}
	}
	return err
}
