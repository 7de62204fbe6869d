package cluster

import (
	"cmp"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
)

// Status describes a node for `kvtool cluster status`, /v1/status and
// /metrics. JSON names follow DESIGN.md (snake_case).
type Status struct {
	ID        uint64 `json:"id"`
	ClusterID uint64 `json:"cluster_id"`
	Role      string `json:"role"` // leader, follower, candidate, pre-candidate
	Leader    uint64 `json:"leader"`
	Term      uint64 `json:"term"`
	Commit    uint64 `json:"commit_index"`
	// AppliedIndex is the store's published index; LastIndex the raft
	// log's last entry (durable).
	AppliedIndex uint64         `json:"applied_index"`
	LastIndex    uint64         `json:"last_index"`
	Members      []MemberStatus `json:"members"`

	Proposals       int64  `json:"proposals"`
	ProposalRetries int64  `json:"proposal_retries"`
	ReadIndexes     int64  `json:"read_indexes"`
	ReadRetries     int64  `json:"read_retries"`
	LeaderChanges   int64  `json:"leader_changes"`
	SnapshotsNeeded int64  `json:"snapshots_needed"`
	LogCuts         int    `json:"log_cuts"`
	Err             string `json:"error,omitempty"`
}

// MemberStatus is one member as this node sees it. Match and Next are
// known only on the leader (zero elsewhere).
type MemberStatus struct {
	ID      uint64 `json:"id"`
	Learner bool   `json:"learner"`
	Match   uint64 `json:"match_index"`
	Next    uint64 `json:"next_index"`
	State   string `json:"state,omitempty"` // probe, replicate, snapshot (leader only)
}

// Status returns the node's current status.
func (n *Node) Status() Status {
	rs := n.raft.Status()
	ls := n.ls.state()
	n.ls.mu.Lock()
	last, cuts := n.ls.last, n.ls.cuts
	n.ls.mu.Unlock()
	s := Status{
		ID: n.cfg.ID, ClusterID: n.cfg.ClusterID, Role: roleName(rs.RaftState), Leader: rs.Lead,
		Term: rs.GetTerm(), Commit: rs.GetCommit(), AppliedIndex: n.st.Snapshot().Index(), LastIndex: last,
		Proposals: n.stats.proposals.Load(), ProposalRetries: n.stats.proposalRetries.Load(),
		ReadIndexes: n.stats.readIndexes.Load(), ReadRetries: n.stats.readRetries.Load(),
		LeaderChanges: n.stats.leaderChanges.Load(), SnapshotsNeeded: n.stats.snapshotsNeeded.Load(), LogCuts: cuts,
	}
	if err := n.Err(); err != nil {
		s.Err = err.Error()
	}
	for _, id := range ls.Conf.GetVoters() {
		s.Members = append(s.Members, memberStatus(id, false, rs.Progress[id]))
	}
	for _, id := range ls.Conf.GetLearners() {
		s.Members = append(s.Members, memberStatus(id, true, rs.Progress[id]))
	}
	slices.SortFunc(s.Members, func(a, b MemberStatus) int { return cmp.Compare(a.ID, b.ID) })
	return s
}

func memberStatus(id uint64, learner bool, pr tracker.Progress) MemberStatus {
	m := MemberStatus{ID: id, Learner: learner, Match: pr.Match, Next: pr.Next}
	if pr.Next > 0 {
		m.State = pr.State.String()
	}
	return m
}

func roleName(s raft.StateType) string {
	switch s {
	case raft.StateLeader:
		return "leader"
	case raft.StateCandidate:
		return "candidate"
	case raft.StatePreCandidate:
		return "pre-candidate"
	}
	return "follower"
}
