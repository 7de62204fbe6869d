package segment

import (
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// DefaultSegmentSize is the rotation threshold when Options.SegmentSize is 0.
const DefaultSegmentSize = 64 << 20

// Entry is one record of the log.
type Entry struct {
	Index uint64
	Term  uint64
	Type  format.FrameType
	Data  []byte // valid until the next call to Next
}

// Options configure Open.
type Options struct {
	FS          vfs.FS
	Dir         string // the WAL directory (DATA/wal); created if missing
	SegmentSize int64  // rotation threshold; default DefaultSegmentSize
	Term        uint64 // term written on new records; default 1
	// StoreID is the identity of the store, written in every segment header
	// and checked on open (a mismatch wraps ErrStoreMismatch).
	StoreID [16]byte
	// FirstIndex is the index of the first record of a brand-new, empty log;
	// default 1. It is ignored when segments exist.
	FirstIndex uint64
	// RepairTail makes Open cut a torn tail of the newest segment (kept in a
	// quarantine file, exactly as Repair does) instead of failing with
	// ErrTornTail.
	RepairTail bool
	// OnDurable, if set, is called by the flusher after each successful
	// sync, in index order, before the waiters of that sync are released.
	// It must not call back into the Log's blocking methods.
	OnDurable func(last uint64)
}

// Log is an open write-ahead log.
type Log struct{}

// Pending is an enqueued record on its way to disk.
type Pending struct{}

// Open opens the log in opts.Dir, creating the directory and a first segment
// if needed.
func Open(opts Options) (*Log, error) { return nil, errNotImplemented }

// Append adds a record of type t and returns its index once it is durable.
func (l *Log) Append(t format.FrameType, data []byte) (uint64, error) {
	return 0, errNotImplemented
}

// Enqueue assigns the next index to a record of type t, copies data into the
// write buffer and returns at once; Wait on the result for durability.
func (l *Log) Enqueue(t format.FrameType, data []byte) (*Pending, error) {
	return nil, errNotImplemented
}

// Index returns the index assigned to the record.
func (p *Pending) Index() uint64 { return 0 }

// Wait blocks until the record is durable, or returns the log's failure.
func (p *Pending) Wait() error { return errNotImplemented }

// Done returns a channel closed when Wait would return.
func (p *Pending) Done() <-chan struct{} { return nil }

// FirstIndex returns the index of the first record in the log (of the oldest
// segment still present).
func (l *Log) FirstIndex() uint64 { return 0 }

// LastIndex returns the last index assigned (durable or not).
func (l *Log) LastIndex() uint64 { return 0 }

// DurableIndex returns the last index known durable.
func (l *Log) DurableIndex() uint64 { return 0 }

// Rotate seals the active segment and starts a new one; it returns once
// everything enqueued before it is durable and the new segment exists.
func (l *Log) Rotate() error { return errNotImplemented }

// DropBefore removes whole sealed segments whose every record is < index,
// oldest first, then syncs the directory; it never removes the active
// segment. It returns the removed paths.
func (l *Log) DropBefore(index uint64) ([]string, error) { return nil, errNotImplemented }

// Segments describes the segments of the log, oldest first.
func (l *Log) Segments() []SegmentInfo { return nil }

// Err returns nil while the log is healthy, and an error wrapping ErrFailed
// once it has failed.
func (l *Log) Err() error { return nil }

// Close flushes and syncs what is buffered and stops the flusher. The log
// cannot be used afterwards; a second Close returns nil... or ErrClosed.
func (l *Log) Close() error { return errNotImplemented }
