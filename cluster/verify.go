package cluster

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// VerifyRaft is a datadir.RaftChecker: it checks a member's raft directory
// raftDir (DATA/raft) the way the member's start would read it, without
// changing a byte, and reports every fault with its file and offset:
//
//   - STATE decodes (header, frame checksum, fields); a log without it is
//     a fault, and so is a store with entries beside a raft directory that
//     holds anything but JOIN (one empty but for JOIN is what a refused
//     cluster start or join on a single store leaves: a note); a directory
//     with only JOIN and an empty store is a member that crashed while
//     joining (a note);
//   - the log's segments pass segment.Verify (checksums, contiguous
//     indexes, the header chain, a torn tail, which the member cuts at
//     start as the store does its WAL's);
//   - every entry after STATE's snapshot is a raft entry (a request, an
//     empty entry or a membership change) with a term that never goes
//     down (it may be above STATE's: entries are synced before the term
//     they came with is saved);
//   - the log continues STATE's snapshot (no entries missing between
//     them), and reaches the index the store has applied (storeApplied:
//     a store ahead of its raft log lost committed entries; the member
//     refuses to start);
//   - JOIN and REMOVED decode (REMOVED is a note: the member was removed,
//     its start refuses);
//   - when STATE's snapshot is past the store's applied index (an install
//     a crash interrupted after its commit point), the staged copy in
//     incoming/ that the start installs is there, sound and at that index.
//
// A log from before an installed snapshot (which the member discards at
// start), a pending install, a snapshot being received and the TRUNCATE
// intent (which datadir reports) are notes.
func VerifyRaft(fsys vfs.FS, raftDir string, storeApplied uint64, res *datadir.RaftResult) error {
	names, err := fsys.List(raftDir)
	if err != nil {
		return fmt.Errorf("kvtool/cluster: list %s: %w", raftDir, err)
	}
	sort.Strings(names)
	var segs int
	var logBytes int64
	for _, n := range names {
		path := filepath.Join(raftDir, n)
		switch _, isSeg := format.ParseSegmentName(n); {
		case isSeg:
			segs++
			if fi, err := fsys.Stat(path); err == nil {
				logBytes += fi.Size()
			}
		case n == StateName, n == segment.TruncateMarkerName:
		case n == JoinName:
			var rec JoinRecord
			size := statSize(fsys, path)
			res.File(path, datadir.KindRaftMarker, size)
			if err := readMarker(fsys, path, format.FrameRaftJoin, &rec); err != nil {
				if !markerFault(res, path, err) {
					return err
				}
			} else {
				res.Note(fmt.Sprintf("%s: this member (%s, %x) joined cluster %x; it catches up to index %d before it serves", path, rec.Self.Name, rec.Self.ID, rec.ClusterID, rec.CatchUp))
			}
		case n == RemovedName:
			var m removedMarker
			res.File(path, datadir.KindRaftMarker, statSize(fsys, path))
			if err := readMarker(fsys, path, format.FrameRaftRemoved, &m); err != nil {
				if !markerFault(res, path, err) {
					return err
				}
			} else {
				res.Note(fmt.Sprintf("%s: this member (%x) was removed from cluster %x at index %d; it refuses to start until its data directory is wiped", path, m.NodeID, m.ClusterID, m.Index))
			}
		case n == IncomingDir:
			res.Note(fmt.Sprintf("%s: a snapshot being received from a peer (or one received, waiting to be installed); never replayed", path))
		default:
			res.Note(fmt.Sprintf("%s: not a raft directory file name; ignored", path))
		}
	}

	statePath := filepath.Join(raftDir, StateName)
	st, err := loadState(fsys, raftDir)
	switch ce := format.AsCorruption(err); {
	case err == nil:
		res.File(statePath, datadir.KindRaftState, statSize(fsys, statePath))
	case errors.Is(err, errNoState):
		if segs > 0 {
			res.Fault(statePath, datadir.KindRaftState, datadir.NoOffset, datadir.Missing,
				"no raft state, but the raft log has segments: the member does not know its term, vote, snapshot or membership and will not start")
		} else if storeApplied > 0 && slices.ContainsFunc(names, func(n string) bool { return n != JoinName }) {
			// A start writes STATE before the store applies anything.
			res.Fault(statePath, datadir.KindRaftState, datadir.NoOffset, datadir.Missing, fmt.Sprintf(
				"no raft state, but the store has applied index %d: the member does not know its term, vote, snapshot or membership and will not start", storeApplied))
		} else if storeApplied > 0 {
			res.Note(fmt.Sprintf("%s: a raft directory with no raft state (at most a JOIN record) beside a store that has applied index %d: a cluster start or join on this store was refused (it refuses a store with entries and no raft state); as a single store's directory it is sound", raftDir, storeApplied))
		} else {
			res.Note(fmt.Sprintf("%s: no raft state yet (a member that stopped before it first started raft); its start creates it", statePath))
		}
	case ce != nil:
		res.Fault(statePath, datadir.KindRaftState, ce.Offset, datadir.Corruption, ce.Reason)
	default:
		return err
	}
	if err := CheckInstall(fsys, filepath.Dir(raftDir)); err != nil {
		res.Note(err.Error())
	}
	if st != nil {
		checkStaged(fsys, raftDir, st.SnapIndex, storeApplied, res)
	}
	if segs == 0 {
		if st != nil {
			res.SetLog(datadir.RaftInfo{SnapshotIndex: st.SnapIndex, LastIndex: st.SnapIndex, Term: st.Term, Commit: st.Commit})
			checkStoreCovered(res, raftDir, st.SnapIndex, storeApplied)
		}
		return nil
	}

	progress := res.Progress
	if progress != nil {
		progress = func(done, _ int64) { res.Progress(done, 2*logBytes) } // verified, then read as entries
	}
	rep, err := segment.Verify(fsys, raftDir, segment.VerifyOptions{Progress: progress})
	if err != nil {
		return logChanged(res, raftDir, fmt.Errorf("kvtool/cluster: verify raft log %s: %w", raftDir, err))
	}
	for _, s := range rep.Segments {
		res.File(s.Path, datadir.KindRaftSegment, statSize(fsys, s.Path))
	}
	damaged := false
	for _, p := range rep.Problems {
		res.Fault(p.Path, datadir.KindRaftSegment, p.Offset, datadir.ProblemKind(p.Kind.String()), p.Reason)
		damaged = damaged || p.Kind != segment.TornTail
	}
	if st == nil || damaged {
		return nil // the entries cannot be read in order, or nothing says where they start
	}
	return checkRaftEntries(fsys, raftDir, st, rep, storeApplied, logBytes, res)
}

// VerifyMember is datadir.Verify with VerifyRaft, for a data directory
// that may hold an install a crash interrupted (CheckInstall): a member's
// start then opens its store and replaces it with the staged snapshot, so
// the store's own files only need to open, and a store being replaced
// (its manifest already the snapshot's, its WAL not yet) is no damage.
// With such an install pending, the store's faults are dropped if it
// opens, and kept if it does not (the start fails there); the raft
// directory and the staged copy are checked as always, and a note says
// so. Tools that read the state itself (inspect, query, replay) still
// refuse such a directory; verify must not, or damage that makes the
// start fail could not be seen before a start finished the install.
func VerifyMember(fsys vfs.FS, dataDir string, opts datadir.VerifyOptions) (*datadir.Report, error) {
	opts.Raft = VerifyRaft
	rep, err := datadir.Verify(fsys, dataDir, opts)
	if err != nil {
		return rep, err
	}
	pending := CheckInstall(fsys, dataDir)
	if !errors.Is(pending, ErrInstallPending) {
		return rep, nil
	}
	s, oerr := store.Open(store.Options{FS: fsys, Dir: dataDir, ReadOnly: true})
	if oerr != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%v; but the store does not open (%v), so the member's start fails before it can finish the install", pending, oerr))
		return rep, nil
	}
	s.Close()
	raftDir := filepath.Join(dataDir, RaftDir) + string(filepath.Separator)
	rep.Faults = 0
	for i := range rep.Files {
		f := &rep.Files[i]
		if !strings.HasPrefix(f.Path, raftDir) {
			f.Problems, f.OK = nil, true
		}
		rep.Faults += len(f.Problems)
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("%s: a snapshot install a crash interrupted is pending (the member's start finishes it from the staged copy): the store, which it replaces, was checked only for opening; start the member once, then verify again for its files", dataDir))
	return rep, nil
}

// checkRaftEntries reads the log's entries after STATE's snapshot and
// checks them and the log's coverage (see VerifyRaft).
func checkRaftEntries(fsys vfs.FS, raftDir string, st *raftState, rep *segment.Report, storeApplied uint64, logBytes int64, res *datadir.RaftResult) error {
	snap, first, last := st.SnapIndex, rep.FirstIndex, rep.LastIndex
	info := datadir.RaftInfo{SnapshotIndex: snap, Term: st.Term, Commit: st.Commit, LastIndex: snap}
	if last >= first && first > snap+1 {
		res.Fault(raftDir, datadir.KindRaftLog, datadir.NoOffset, datadir.Coverage, fmt.Sprintf(
			"the raft log starts at index %d, but STATE says it continues snapshot %d: entries %d to %d are in no file, and the member will not start",
			first, snap, snap+1, first-1))
		res.SetLog(info)
		return nil
	}
	r, err := segment.NewReader(fsys, raftDir, snap)
	if err != nil {
		return logChanged(res, raftDir, fmt.Errorf("kvtool/cluster: read raft log %s: %w", raftDir, err))
	}
	defer r.Close()
	term := st.SnapTerm
	empty := last < first
	stale := !empty && snap > last // a log the snapshot passed
	var read int64
	for !empty && !stale {
		e, err := r.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			if format.AsCorruption(err) != nil {
				break // a torn tail segment.Verify reported: the member cuts it
			}
			return logChanged(res, raftDir, fmt.Errorf("kvtool/cluster: read raft log %s: %w", raftDir, err))
		}
		path, off := r.Position()
		read += int64(len(e.Data))
		if res.Progress != nil {
			res.Progress(logBytes+min(read, logBytes), 2*logBytes)
		}
		if e.Index < snap {
			continue
		}
		if e.Index == snap { // the snapshot's own entry, kept by a compaction that dropped only older segments
			stale = e.Term != st.SnapTerm
			continue
		}
		if _, err := entryOf(e, raftDir); err != nil {
			res.Fault(path, datadir.KindRaftSegment, off, datadir.Corruption, fmt.Sprintf(
				"entry %d is no raft entry (record type %d, %d bytes): not written by a cluster member", e.Index, e.Type, len(e.Data)))
			break
		}
		if e.Term < term { // (segment checks the terms within the log; this is the snapshot's)
			res.Fault(path, datadir.KindRaftSegment, off, datadir.Corruption, fmt.Sprintf(
				"entry %d has term %d, below term %d of the snapshot or entry before it: a raft log's terms never go down", e.Index, e.Term, term))
			break
		}
		term = e.Term
		if info.FirstIndex == 0 {
			info.FirstIndex = e.Index
		}
		info.LastIndex = e.Index
	}
	if stale {
		res.Note(fmt.Sprintf("%s: the raft log (entries %d to %d) is from before snapshot %d that STATE records: the member discards it at start",
			raftDir, first, last, snap))
		info.FirstIndex, info.LastIndex = 0, snap
	}
	res.SetLog(info)
	checkStoreCovered(res, raftDir, info.LastIndex, storeApplied)
	return nil
}

// checkStaged checks, when STATE's snapshot is past the store's applied
// index (an install a crash interrupted after its commit point: the raft
// log was discarded up to the snapshot, the store not yet replaced), the
// staged copy the member's start installs it from: it must be in
// DATA/raft/incoming, sound, and stand at the snapshot's index, or the
// member will not start. Its faults are reported as its files' own.
func checkStaged(fsys vfs.FS, raftDir string, snap, storeApplied uint64, res *datadir.RaftResult) {
	if snap <= storeApplied || storeApplied == 0 && res.StoreFaults() > 0 {
		return // (the store's own faults say why it stands nowhere)
	}
	incoming := filepath.Join(raftDir, IncomingDir)
	staged, ok := stagedStore(fsys, incoming)
	if !ok {
		res.Fault(incoming, datadir.KindRaftLog, datadir.NoOffset, datadir.Missing, fmt.Sprintf(
			"the raft state says snapshot %d is installed, the store stands at index %d, and no staged copy of the snapshot is here to finish the install from: the entries in between are in no file, and the member will not start",
			snap, storeApplied))
		return
	}
	rep, err := datadir.Verify(fsys, staged, datadir.VerifyOptions{})
	if err != nil {
		res.Fault(staged, datadir.KindRaftLog, datadir.NoOffset, datadir.Corruption, fmt.Sprintf(
			"the staged copy of snapshot %d, which the member's start installs (its store stands at index %d), cannot be read: %v", snap, storeApplied, err))
		return
	}
	for _, f := range rep.Files {
		res.File(f.Path, f.Kind, f.Size)
		for _, p := range f.Problems {
			res.Fault(p.Path, f.Kind, p.Offset, p.Kind, "in the staged copy of snapshot "+strconv.FormatUint(snap, 10)+" the member's start installs: "+p.Reason)
		}
	}
	if rep.OK() && rep.AppliedIndex != snap {
		res.Fault(staged, datadir.KindRaftLog, datadir.NoOffset, datadir.Coverage, fmt.Sprintf(
			"the staged copy stands at index %d, but the raft state says snapshot %d is installed from it: the member will not start", rep.AppliedIndex, snap))
	}
}

// logChanged returns err, unless it is a segment listed and then gone (a
// running member's compaction dropped it while verify read the log): that
// is no damage, so it becomes a note saying to run verify again and nil.
func logChanged(res *datadir.RaftResult, raftDir string, err error) error {
	if !vfs.IsNotExist(err) {
		return err
	}
	res.Note(fmt.Sprintf("%s: the raft log changed while it was read (%v): a running member compacted it; run verify again to check the rest of it", raftDir, err))
	return nil
}

// checkStoreCovered reports a store that applied past the raft log's end.
func checkStoreCovered(res *datadir.RaftResult, raftDir string, logLast, storeApplied uint64) {
	if storeApplied > logLast {
		res.Fault(raftDir, datadir.KindRaftLog, datadir.NoOffset, datadir.Coverage, fmt.Sprintf(
			"the store has applied index %d, but the raft log ends at %d: the raft log lost committed entries, and the member will not start",
			storeApplied, logLast))
	}
}

// markerFault records a damaged marker file; false for an error that is
// not damage (the caller returns it).
func markerFault(res *datadir.RaftResult, path string, err error) bool {
	ce := format.AsCorruption(err)
	if ce == nil {
		return false
	}
	res.Fault(path, datadir.KindRaftMarker, ce.Offset, datadir.Corruption, ce.Reason)
	return true
}

func statSize(fsys vfs.FS, path string) int64 {
	fi, err := fsys.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
