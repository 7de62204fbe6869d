package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// Small JSON files of the raft directory, each a format header
// (MagicRaftState) and one checksummed frame:
//
//	DATA/raft/REMOVED  FrameRaftRemoved: the member applied its own removal
//	DATA/raft/JOIN     FrameRaftJoin: the member joined a running cluster
const (
	RemovedName = "REMOVED"
	JoinName    = "JOIN"
)

// maxMarkerSize bounds a marker file read from disk.
const maxMarkerSize = 1 << 20

// removedMarker is the content of REMOVED.
type removedMarker struct {
	ClusterID uint64 `json:"cluster_id"`
	NodeID    uint64 `json:"node_id"`
	Index     uint64 `json:"index"`
}

// writeRemoved records durably that the member was removed at index.
func writeRemoved(fs vfs.FS, dir string, clusterID, index uint64) error {
	st, _ := loadState(fs, dir)
	m := removedMarker{ClusterID: clusterID, Index: index}
	if st != nil {
		m.NodeID = st.NodeID
	}
	return writeMarker(fs, filepath.Join(dir, RemovedName), format.FrameRaftRemoved, m)
}

// checkRemoved refuses a raft directory whose member was removed.
func checkRemoved(fs vfs.FS, dir string) error {
	var m removedMarker
	path := filepath.Join(dir, RemovedName)
	err := readMarker(fs, path, format.FrameRaftRemoved, &m)
	if errors.Is(err, errNoMarker) {
		return nil
	} else if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s says this member (%x) was removed from cluster %x at index %d; wipe %s to join again (kvtool serve --join-cluster)",
		ErrRemoved, path, m.NodeID, m.ClusterID, m.Index, filepath.Dir(dir))
}

// JoinRecord is the content of JOIN: a member that joined a running
// cluster (serve --join-cluster) records who it is, the members it
// learned, and the index it catches up to before it serves, before it
// starts raft; a restart reads it instead of asking to join again.
type JoinRecord struct {
	ClusterID uint64         `json:"cluster_id"`
	Self      MemberRecord   `json:"self"`
	Members   []MemberRecord `json:"members"`
	// CatchUp is the leader's commit index when it added this member:
	// the member answers 503 "syncing" until it has applied that far.
	CatchUp uint64 `json:"catch_up_index"`
	// InitialVoters is the membership the cluster's log starts from (at
	// index 0), when the member that answered still holds its log from
	// the start: the joiner's raft state starts from it and replays the
	// log's membership changes. Empty when that log was compacted: the
	// joiner then gets a snapshot (raft's MsgSnap), with its ConfState.
	InitialVoters []uint64 `json:"initial_voters,omitempty"`
}

// ReadJoin reads the JOIN record of the data directory dataDir; ok is
// false if it has none.
func ReadJoin(fs vfs.FS, dataDir string) (rec JoinRecord, ok bool, err error) {
	if fs == nil {
		fs = vfs.Default
	}
	err = readMarker(fs, filepath.Join(dataDir, RaftDir, JoinName), format.FrameRaftJoin, &rec)
	if errors.Is(err, errNoMarker) {
		return rec, false, nil
	}
	return rec, err == nil, err
}

// WriteJoin records rec durably as the JOIN record of the data directory
// dataDir. A joiner writes it as soon as the cluster added it, before it
// says so or does anything else: a restart then resumes the join instead
// of asking to be added again.
func WriteJoin(fs vfs.FS, dataDir string, rec JoinRecord) error {
	if fs == nil {
		fs = vfs.Default
	}
	return writeMarker(fs, filepath.Join(dataDir, RaftDir, JoinName), format.FrameRaftJoin, rec)
}

// errNoMarker is wrapped when a marker file does not exist.
var errNoMarker = errors.New("kvtool/cluster: no marker file")

func writeMarker(fs vfs.FS, path string, t format.FrameType, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := ensureDir(fs, filepath.Dir(path)); err != nil {
		return err
	}
	b := format.AppendFrame(format.AppendHeader(nil, format.MagicRaftState, nil), t, body)
	if err := format.WriteFileAtomic(fs, path, b); err != nil {
		return fmt.Errorf("kvtool/cluster: write %s: %w", path, err)
	}
	return nil
}

func readMarker(fs vfs.FS, path string, t format.FrameType, v any) error {
	f, err := fs.Open(path)
	if vfs.IsNotExist(err) {
		return fmt.Errorf("%w: %s", errNoMarker, path)
	} else if err != nil {
		return fmt.Errorf("kvtool/cluster: open %s: %w", path, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return fmt.Errorf("kvtool/cluster: size of %s: %w", path, err)
	}
	if size > maxMarkerSize {
		return format.Corruptf(path, 0, "%d bytes, the limit is %d", size, maxMarkerSize)
	}
	if _, err := format.ReadHeader(f, path, format.MagicRaftState); err != nil {
		return err
	}
	off := int64(format.HeaderSize(0))
	fr := format.NewFrameReader(f, path, off, size, false)
	fm, err := fr.Next()
	if err == io.EOF {
		return format.Corruptf(path, off, "no body")
	} else if err != nil {
		return err
	}
	if fm.Type != t {
		return format.Corruptf(path, fm.Offset, "frame type %d, want %d", fm.Type, t)
	}
	if err := json.Unmarshal(fm.Payload, v); err != nil {
		return format.Corruptf(path, fm.Offset, "body: %v", err)
	}
	return nil
}
