package datadir

import (
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// Kinds of the files of a cluster member's raft directory (DATA/raft).
const (
	KindRaftState   FileKind = "raft-state"   // DATA/raft/STATE: term, vote, commit hint, snapshot, membership
	KindRaftSegment FileKind = "raft-segment" // DATA/raft/*.wal: the raft log
	KindRaftMarker  FileKind = "raft-marker"  // DATA/raft/JOIN or REMOVED
	KindRaftLog     FileKind = "raft-log"     // the raft log as a whole (its coverage)
)

// RaftChecker verifies a cluster member's raft directory, whose formats
// this package does not know (cluster.VerifyRaft is the one). raftDir is
// DATA/raft; storeApplied is the index the store's recovery reaches (0 if
// unknown: the store would not open). It adds what it checks and finds
// to rep through the RaftResult methods, and returns an error only for
// what stops verification itself (an I/O error), never for damage.
type RaftChecker func(fsys vfs.FS, raftDir string, storeApplied uint64, res *RaftResult) error

// RaftResult collects what a RaftChecker found.
type RaftResult struct {
	rep         *Report
	storeFaults int // the faults found before the raft directory's
	// Progress, if set, is called as the raft log is read with the bytes
	// read so far and the bytes of the raft log in all.
	Progress func(done, total int64)
}

// File records that path (of kind, size bytes) was checked.
func (r *RaftResult) File(path string, kind FileKind, size int64) {
	r.rep.file(path, kind).Size = size
}

// Fault records a fault in path at offset off (NoOffset: the whole file).
func (r *RaftResult) Fault(path string, kind FileKind, off int64, pk ProblemKind, reason string) {
	r.rep.addf(path, kind, off, pk, "%s", reason)
}

// StoreFaults is how many faults the rest of the data directory has (the
// store's): with any, a storeApplied of 0 may only mean the store would not
// open.
func (r *RaftResult) StoreFaults() int { return r.storeFaults }

// Note records a remark that is not a fault.
func (r *RaftResult) Note(text string) { r.rep.notef("%s", text) }

// SetLog records the raft log's extent as the member would start from it.
func (r *RaftResult) SetLog(info RaftInfo) { r.rep.Raft = &info }

// RaftInfo is what a Report says of a member's raft log.
type RaftInfo struct {
	SnapshotIndex uint64 `json:"snapshot_index"` // the raft snapshot the log continues (STATE)
	FirstIndex    uint64 `json:"first_index"`    // first entry on disk after the snapshot (0: none)
	LastIndex     uint64 `json:"last_index"`     // last intact entry: what the member starts with
	Term          uint64 `json:"term"`           // STATE's term
	Commit        uint64 `json:"commit"`         // STATE's commit hint
}

// checkRaft runs opts.Raft over DATA/raft, if the directory has one.
func (v *verifier) checkRaft() error {
	raftDir := filepath.Join(v.l.dir, format.RaftDir)
	if v.opts.Raft == nil || !v.l.hasRaft {
		return nil
	}
	res := &RaftResult{rep: v.rep, storeFaults: v.rep.Faults}
	if v.opts.Progress != nil {
		base := v.done
		res.Progress = func(done, total int64) { v.opts.Progress(base+done, base+total) }
	}
	return v.opts.Raft(v.fsys, raftDir, v.rep.AppliedIndex, res)
}
