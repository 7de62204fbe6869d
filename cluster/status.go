package cluster

import (
	"cmp"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
)

// Status describes a node for `kvtool cluster status`, /v1/status and
// /metrics. JSON names follow DESIGN.md (snake_case).
type Status struct {
	ID        uint64 `json:"id"`
	Name      string `json:"name,omitempty"` // set by a Member
	ClusterID uint64 `json:"cluster_id"`
	Role      string `json:"role"` // leader, follower, learner, candidate, pre-candidate
	Leader    uint64 `json:"leader"`
	Term      uint64 `json:"term"`
	Commit    uint64 `json:"commit_index"`
	// AppliedIndex is the store's published index; LastIndex the raft
	// log's last entry (durable).
	AppliedIndex uint64         `json:"applied_index"`
	LastIndex    uint64         `json:"last_index"`
	Members      []MemberStatus `json:"members"`

	// Proposals counts Propose calls; their outcomes are ProposalsOK
	// (applied), ProposalsAborted (applied as a failed check: nothing
	// changed) and ProposalsFailed (no answer before the deadline, or the
	// node stopped: the write may or may not apply).
	Proposals        int64 `json:"proposals"`
	ProposalsOK      int64 `json:"proposals_ok"`
	ProposalsAborted int64 `json:"proposals_aborted"`
	ProposalsFailed  int64 `json:"proposals_failed"`
	ProposalRetries  int64 `json:"proposal_retries"`
	ReadIndexes      int64 `json:"read_indexes"`
	ReadRetries      int64 `json:"read_retries"`
	LeaderChanges    int64 `json:"leader_changes"`
	// SnapshotsNeeded counts the snapshots raft asked for that this node
	// could not send at all (a transport without snapshot streams, or no
	// shared secret); Snapshots counts the transfers, both ways.
	SnapshotsNeeded int64         `json:"snapshots_needed"`
	Snapshots       SnapshotStats `json:"snapshots"`
	// Install is the snapshot this node receives or installed last (nil
	// if none came since it started): a joiner's "syncing" progress.
	Install *InstallProgress `json:"install,omitempty"`
	LogCuts int              `json:"log_cuts"`
	// QueueDropped counts peers' messages dropped because the queue to
	// the Ready loop was full (rawnode.go; raft sends them again).
	QueueDropped int64 `json:"queue_dropped,omitempty"`
	// Refused counts peers' messages this node refused (a membership
	// change that does not decode, a snapshot whose membership raft
	// cannot hold, a message for another member); RefusedError is the
	// last refusal, naming the member that sent it.
	Refused      int64  `json:"refused_messages,omitempty"`
	RefusedError string `json:"refused_error,omitempty"`
	// SnapIndex is the raft snapshot the log starts after (compaction
	// moves it); Compactions counts the compactions since the start, and
	// CompactError is the last one's failure, if any.
	SnapIndex    uint64 `json:"snap_index"`
	Compactions  int64  `json:"compactions"`
	CompactError string `json:"compact_error,omitempty"`
	// Leases are the log each peer pins (leader only): see retention.go.
	Leases []LeaseStatus `json:"leases,omitempty"`
	Err    string        `json:"error,omitempty"`
}

// MemberStatus is one member as this node sees it. Match and Next are
// known only on the leader (zero elsewhere), and so is RoundTrip. Name,
// the addresses and Connected are filled in by a Member (they are the
// transport's knowledge); a bare Node leaves them empty.
type MemberStatus struct {
	ID       uint64 `json:"id"`
	Name     string `json:"name,omitempty"`
	Self     bool   `json:"self"`
	Learner  bool   `json:"learner"`
	PeerAddr string `json:"peer_addr,omitempty"`
	APIAddr  string `json:"api_addr,omitempty"`
	Match    uint64 `json:"match_index"`
	Next     uint64 `json:"next_index"`
	State    string `json:"state,omitempty"` // probe, replicate, snapshot (leader only)
	// Connected says the link from this node to the member is up (always
	// true for the node itself).
	Connected bool `json:"connected"`
	// RoundTrip is the smoothed heartbeat round trip (leader only; zero
	// until measured).
	RoundTrip time.Duration `json:"round_trip_ns"`
	// Dropped counts the messages to the member this node dropped (queue
	// full, link down): raft sends them again.
	Dropped int64 `json:"dropped_messages"`
	// PinnedIndex and PinnedBytes are the log the member's lease keeps on
	// this node (leader only; the log after PinnedIndex), LeaseExpires
	// when the lease lapses if the member stays silent, LeaseState its
	// state (LeaseActive, LeaseExpired, LeaseEvicted; "" without a lease).
	PinnedIndex  uint64    `json:"pinned_index,omitempty"`
	PinnedBytes  int64     `json:"pinned_bytes,omitempty"`
	LeaseExpires time.Time `json:"lease_expires,omitzero"`
	LeaseState   string    `json:"lease_state,omitempty"`
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
		Proposals: n.stats.proposals.Load(), ProposalsOK: n.stats.proposalsOK.Load(),
		ProposalsAborted: n.stats.proposalsAborted.Load(), ProposalsFailed: n.stats.proposalsFailed.Load(),
		ProposalRetries: n.stats.proposalRetries.Load(),
		ReadIndexes:     n.stats.readIndexes.Load(), ReadRetries: n.stats.readRetries.Load(),
		LeaderChanges: n.stats.leaderChanges.Load(), SnapshotsNeeded: n.stats.snapshotsNeeded.Load(), LogCuts: cuts,
		QueueDropped: n.raft.dropped.Load(), Refused: n.stats.refused.Load(),
	}
	if e := n.stats.refusedErr.Load(); e != nil {
		s.RefusedError = *e
	}
	if err := n.Err(); err != nil {
		s.Err = err.Error()
	}
	s.Snapshots, s.SnapIndex, s.Compactions = n.SnapshotStats(), ls.SnapIndex, n.stats.compactions.Load()
	if e := n.stats.compactErr.Load(); e != nil {
		s.CompactError = *e
	}
	if p := n.InstallProgress(); p.Phase != "" {
		s.Install = &p
	}
	n.ret.observe(rs, n.cfg.ID, time.Now()) // current leases, between compactions too
	s.Leases = n.Leases()
	if slices.Contains(ls.Conf.GetLearners(), n.cfg.ID) {
		s.Role = "learner"
	}
	leading := rs.RaftState == raft.StateLeader
	add := func(id uint64, learner bool) {
		m := memberStatus(id, learner, rs.Progress[id])
		m.Self, m.Connected = id == n.cfg.ID, id == n.cfg.ID
		if leading && !m.Self {
			m.RoundTrip = n.rtt.get(id).Smooth
		}
		s.Members = append(s.Members, m)
	}
	for _, id := range ls.Conf.GetVoters() {
		add(id, false)
	}
	for _, id := range ls.Conf.GetLearners() {
		add(id, true)
	}
	slices.SortFunc(s.Members, func(a, b MemberStatus) int { return cmp.Compare(a.ID, b.ID) })
	for _, l := range s.Leases {
		for i := range s.Members {
			if m := &s.Members[i]; m.ID == l.Peer && !l.Transfer {
				m.PinnedIndex, m.PinnedBytes, m.LeaseExpires, m.LeaseState = l.Index, l.Bytes, l.Expires, l.State
			}
		}
	}
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
