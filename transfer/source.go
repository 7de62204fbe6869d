package transfer

import (
	"context"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
)

// Source is what a sender ships: one store's snapshots and log. Package
// xferstore implements it over a live store (xferstore.NewStoreSource)
// and an offline data directory (xferstore.OpenDirSource), with
// FileSnapshot and WALTail; tests use an in-memory one.
type Source interface {
	// Identity describes the store.
	Identity() Identity
	// Pin returns a pinned snapshot for req.Peer: the one named by
	// req.Want if the source still has it together with its log from
	// req.TailFrom on, otherwise a new one (whose ID differs). The pin
	// keeps the snapshot's bytes and the log after it until Release.
	Pin(ctx context.Context, req PinRequest) (Snapshot, error)
	// PinLog pins the log after index after, for a receiver whose complete
	// store ends there. The returned Snapshot has Size 0 and ID().Index ==
	// after. It fails with ErrTooFarBehind if the log no longer holds
	// after+1.
	PinLog(ctx context.Context, peer string, after uint64) (Snapshot, error)
	// Tail returns the log's entries from index from on. Its Next blocks
	// until the next entry is durable.
	Tail(ctx context.Context, from uint64) (Tail, error)
	// LastIndex is the last index durable in the source's log: where a
	// receiver that is caught up stands.
	LastIndex() uint64
}

// Identity is who a source is.
type Identity struct {
	StoreID     manifest.StoreID
	Epoch       uint64
	Term        uint64
	SegmentSize int64 // the source's WAL segment size; receivers use it for theirs
}

// PinRequest says which snapshot a receiver would like to resume.
type PinRequest struct {
	Peer     string
	Want     format.XferSnapshotID // zero: any (a new one)
	TailFrom uint64                // with Want: the first log index the receiver still needs
}

// Snapshot is a pinned snapshot: a checkpoint file's bytes and the log
// after its index. Its methods may be called from several goroutines.
type Snapshot interface {
	ID() format.XferSnapshotID
	Size() int64
	ReadAt(p []byte, off int64) (int, error)
	// Retain renews the pin, and says the receiver holds the log through
	// index durably and whether it still needs the snapshot bytes: the pin
	// may let go of what is older. The sender calls it every
	// SendOptions.RetainEvery.
	Retain(index uint64, needFile bool)
	// Release ends the session's hold. With done the receiver needs
	// nothing more (it cut over, or was refused for good); otherwise the
	// connection broke and the receiver may come back to resume, so the
	// source should keep the snapshot and its log until the pin expires.
	Release(done bool)
}

// Tail reads log entries in index order.
type Tail interface {
	// Next returns the next entry, waiting until it is durable; io.EOF
	// when the source will never have more (an offline directory). Data is
	// valid until the next call.
	Next(ctx context.Context) (segment.Entry, error)
	Close() error
}

// Progress describes a transfer in flight, for progress bars and status.
type Progress struct {
	Phase string `json:"phase"` // see the Phase constants
	Peer  string `json:"peer"`
	// SourceAPI is the source's HTTP API address, on a receiver whose
	// sender said it (ReceiveResult.SourceAPI).
	SourceAPI  string `json:"source_api,omitempty"`
	Snapshot   string `json:"snapshot,omitempty"` // format.XferSnapshotID.String()
	Resumed    bool   `json:"resumed"`
	Chunks     uint64 `json:"chunks"`
	ChunksDone uint64 `json:"chunks_done"` // verified and durable at the receiver
	Bytes      int64  `json:"bytes"`       // snapshot size
	BytesDone  int64  `json:"bytes_done"`  // of those, verified and durable at the receiver
	// SessionBytes is the part of BytesDone this session moved (not what
	// the receiver held when it resumed), and Rate its bytes per second:
	// both ends of a session report the same (see totals.go).
	SessionBytes int64  `json:"session_bytes"`
	Rate         int64  `json:"rate"`
	BytesSent    int64  `json:"bytes_sent"` // chunk bytes on the wire, resends included
	TailIndex    uint64 `json:"tail_index"` // last log entry sent or received
	AppliedIndex uint64 `json:"applied_index,omitempty"`
}

// Phases of a transfer.
const (
	PhaseHandshake = "handshake"
	PhaseSnapshot  = "snapshot"  // chunks (and tail) flowing
	PhaseCutover   = "cutover"   // verifying and installing
	PhaseFollowing = "following" // cut over; applying the source's log (read replica)
	PhaseDone      = "done"
)
