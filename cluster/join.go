package cluster

import (
	"path/filepath"

	"fmt"
	"github.com/kvtool/kvtool/format"
	"slices"

	pb "go.etcd.io/raft/v3/raftpb"
)

// JoinAnswer is what a member answers a node that asks to join (serve
// --join-cluster): the cluster's ID, its members, and where the joiner's
// raft state starts.
type JoinAnswer struct {
	ClusterID     uint64         `json:"cluster_id"`
	Members       []MemberRecord `json:"members"`
	CommitIndex   uint64         `json:"commit_index"`
	InitialVoters []uint64       `json:"initial_voters,omitempty"`
}

// JoinAnswer returns what this member tells a joiner once its add applied.
func (m *Member) JoinAnswer() JoinAnswer {
	ls := m.ls.state()
	a := JoinAnswer{ClusterID: m.cfg.ClusterID, Members: m.Records(), CommitIndex: m.Status().Commit}
	if ls.SnapIndex == 0 && len(ls.SnapConf.GetLearners()) == 0 {
		a.InitialVoters = slices.Clone(ls.SnapConf.GetVoters())
	}
	return a
}

// JoinRecordFor is the JOIN record of member self joining with answer a.
func JoinRecordFor(self MemberRecord, a JoinAnswer) JoinRecord {
	var others []MemberRecord
	for _, r := range a.Members {
		if r.ID != self.ID {
			others = append(others, r)
		}
	}
	return JoinRecord{ClusterID: a.ClusterID, Self: self, Members: others, CatchUp: a.CommitIndex, InitialVoters: a.InitialVoters}
}

// bootstrapJoiner writes the first raft state of a member joining a
// running cluster: no entries, and the membership the cluster's log starts
// from (InitialVoters), so that replaying the log rebuilds the membership
// every member has; with none (the log was compacted), an empty one until
// a snapshot brings it. The JOIN record is written first, so a restart
// finds who the member is before any raft state exists.
func bootstrapJoiner(cfg *Config, dir string) (*raftState, error) {
	j := cfg.Join
	if j.ClusterID != cfg.ClusterID || j.Self.ID != cfg.ID {
		return nil, fmt.Errorf("%w: the join record is for member %x of cluster %x, not %x of %x", ErrClusterMismatch, j.Self.ID, j.ClusterID, cfg.ID, cfg.ClusterID)
	}
	if idx := cfg.Store.Snapshot().Index(); idx > 0 {
		if err := stateLost(cfg.FS, dir, idx); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("kvtool/cluster: %s has no raft state but the store already holds entries up to %d: a joining member starts from an empty data directory", dir, idx)
	}
	voters := slices.Compact(slices.Sorted(slices.Values(j.InitialVoters)))
	st := &raftState{ClusterID: cfg.ClusterID, NodeID: cfg.ID, Conf: &pb.ConfState{Voters: voters}, SnapConf: &pb.ConfState{Voters: voters}}
	if slices.Contains(voters, 0) {
		return nil, fmt.Errorf("kvtool/cluster: the join record's initial voters %v include ID 0, which no member has", j.InitialVoters)
	}
	if err := writeMarker(cfg.FS, filepath.Join(dir, JoinName), format.FrameRaftJoin, j); err != nil {
		return nil, err
	}
	if err := saveState(cfg.FS, dir, st); err != nil {
		return nil, err
	}
	return st, nil
}
