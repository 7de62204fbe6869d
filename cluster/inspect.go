package cluster

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// RaftSummary is what a member's raft directory says about the member, for
// kvtool inspect: who it is, raft's durable state, the membership it
// holds, and the extent of its raft log. It reads files only.
type RaftSummary struct {
	ClusterID, NodeID   uint64
	Term, Vote, Commit  uint64 // Commit is STATE's hint (the member raises it to its store's applied index)
	SnapIndex, SnapTerm uint64 // the raft snapshot the log continues
	ConfIndex           uint64 // the entry the membership below is in force after
	Voters, Learners    []uint64
	VotersOutgoing      []uint64 // a joint change in progress: the old voters
	// LogFirst and LogLast are the first and last entries in the log's
	// segments (LogLast < LogFirst: none); LogSegments counts them.
	LogFirst, LogLast uint64
	LogSegments       int
	Join              *JoinRecord // the member joined a running cluster (DATA/raft/JOIN)
	RemovedAt         uint64      // the member applied its own removal at this index (0: not removed)
	// NoState is set for a directory without STATE or log segments: a
	// member that stopped before it first started raft (a joiner right
	// after recording JOIN); its start creates STATE. Not damage.
	NoState bool
	// StateErr is why STATE could not be read (the fields above from it are
	// then zero); LogErr and MarkerErr likewise for the log and markers.
	StateErr, LogErr, MarkerErr error
}

// InspectRaft summarises the raft directory of the data directory dataDir;
// nil when it has none (not a cluster member). Damage is recorded in the
// summary's errors, never returned; the error is for a directory that
// cannot be listed.
func InspectRaft(fsys vfs.FS, dataDir string) (*RaftSummary, error) {
	dir := filepath.Join(dataDir, RaftDir)
	if _, err := fsys.Stat(dir); vfs.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("kvtool/cluster: %w", err)
	}
	s := &RaftSummary{}
	segs, logErr := segment.List(fsys, dir)
	if st, err := loadState(fsys, dir); errors.Is(err, errNoState) && logErr == nil && len(segs) == 0 {
		s.NoState = true
	} else if err != nil {
		s.StateErr = err
	} else {
		s.ClusterID, s.NodeID, s.Term, s.Vote, s.Commit = st.ClusterID, st.NodeID, st.Term, st.Vote, st.Commit
		s.SnapIndex, s.SnapTerm, s.ConfIndex = st.SnapIndex, st.SnapTerm, st.ConfIndex
		if cs := st.Conf; cs != nil {
			s.Voters, s.Learners, s.VotersOutgoing = cs.Voters, append(cs.Learners, cs.LearnersNext...), cs.VotersOutgoing
		}
	}
	if logErr != nil {
		s.LogErr = logErr
	} else if len(segs) > 0 {
		s.LogSegments, s.LogFirst, s.LogLast = len(segs), segs[0].FirstIndex, segs[len(segs)-1].LastIndex
	}
	if rec, ok, err := ReadJoin(fsys, dataDir); err != nil {
		s.MarkerErr = err
	} else if ok {
		s.Join = &rec
	}
	var m removedMarker
	switch err := readMarker(fsys, filepath.Join(dir, RemovedName), format.FrameRaftRemoved, &m); {
	case err == nil:
		s.RemovedAt = max(m.Index, 1)
	case !errors.Is(err, errNoMarker):
		s.MarkerErr = errors.Join(s.MarkerErr, err)
	}
	return s, nil
}
