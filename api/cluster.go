package api

// DuplicateHeader is set to "true" on the answer to a write whose request
// ID (RequestIDHeader) had already applied: the write changed nothing now,
// and the index is the one it applied at first.
const DuplicateHeader = "X-Kvtool-Duplicate"

// ClusterStatus is one cluster member's view of its cluster: the "cluster"
// object of GET /v1/status, and the answer of GET /v1/cluster (which also
// asks every other member for its applied index and role). IDs are 16 hex
// digits.
type ClusterStatus struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	ClusterID string `json:"cluster_id"`
	// Role is this member's: leader, follower, candidate or pre-candidate.
	Role string `json:"role"`
	// Leader is the leader's name ("" when no leader is known).
	Leader   string `json:"leader"`
	LeaderID string `json:"leader_id"`
	Term     uint64 `json:"term"`
	// CommitIndex is the last entry this member knows committed, LastIndex
	// the last in its raft log, AppliedIndex the last in its published
	// state.
	CommitIndex  uint64          `json:"commit_index"`
	AppliedIndex uint64          `json:"applied_index"`
	LastIndex    uint64          `json:"last_index"`
	Members      []ClusterMember `json:"members"`
	Proposals    ProposalCounts  `json:"proposals"`
	ReadIndexes  int64           `json:"read_indexes"`
	ReadRetries  int64           `json:"read_retries"`
	// LeaderChanges counts the changes of leader this member saw.
	LeaderChanges int64 `json:"leader_changes"`
	// SnapshotsNeeded counts the snapshots raft asked this member to send
	// that it could not send at all (no snapshot stream or secret);
	// SnapshotsSent and SnapshotsFailed count the transfers it made.
	SnapshotsNeeded int64 `json:"snapshots_needed"`
	SnapshotsSent   int64 `json:"snapshots_sent"`
	SnapshotsFailed int64 `json:"snapshots_failed"`
	// SnapshotBytesSent counts the snapshot chunk bytes this member wrote
	// to others, resends after a cut or a nack included.
	SnapshotBytesSent int64 `json:"snapshot_bytes_sent"`
	// SnapIndex is the raft snapshot this member's log starts after: the
	// log was compacted up to it (0: never), and a member or joiner behind
	// it gets a snapshot.
	SnapIndex uint64 `json:"snap_index"`
	// LogCuts counts the uncommitted log suffixes a new leader replaced.
	LogCuts int `json:"log_cuts"`
	// RefusedMessages counts the peers' messages this member refused (a
	// snapshot whose membership raft cannot hold, a membership change
	// that does not decode, a message for another member); RefusedError
	// is the last refusal, naming the member that sent it.
	RefusedMessages int64  `json:"refused_messages,omitempty"`
	RefusedError    string `json:"refused_error,omitempty"`
	// Failed is the error that stopped this member (fail stop), if any.
	Failed string `json:"failed,omitempty"`
}

// ClusterMember is one member in a ClusterStatus.
type ClusterMember struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	// Role is leader, follower, learner, candidate or pre-candidate: the
	// member's own word when it was asked, else the viewer's.
	Role     string `json:"role"`
	Self     bool   `json:"self"`
	PeerAddr string `json:"peer_addr"`
	// APIAddr is the member's HTTP API ("" until it has connected to the
	// viewer).
	APIAddr string `json:"api_addr"`
	// MatchIndex is the last entry the leader knows the member holds (0
	// when the leader was not asked or is unknown).
	MatchIndex uint64 `json:"match_index"`
	// AppliedIndex is the member's published index and Lag how far it
	// trails the leader's commit index; both null when the member was not
	// asked (the "cluster" object of /v1/status asks nobody) or did not
	// answer (Error says why).
	AppliedIndex *uint64 `json:"applied_index"`
	Lag          *uint64 `json:"lag"`
	// Connected says the viewer's link to the member is up.
	Connected bool `json:"connected"`
	// RoundTripSeconds is the leader's smoothed heartbeat round trip to
	// the member (0 unknown).
	RoundTripSeconds float64 `json:"round_trip_seconds"`
	DroppedMessages  int64   `json:"dropped_messages"`
	// PinnedIndex and PinnedBytes are the raft log the member's lease
	// keeps on the leader (the log after PinnedIndex; leader's view only),
	// LeaseExpires when it lapses if the member stays silent, LeaseState
	// active, expired or evicted (over the size cap).
	PinnedIndex  uint64 `json:"pinned_index,omitempty"`
	PinnedBytes  int64  `json:"pinned_bytes,omitempty"`
	LeaseExpires string `json:"lease_expires,omitempty"`
	LeaseState   string `json:"lease_state,omitempty"`
	Error        string `json:"error,omitempty"`
}

// ProposalCounts counts a member's writes through raft: OK applied,
// Aborted applied as a failed check (nothing changed), Failed not answered
// in time or refused by a stopped member (the write may still apply),
// Retries proposals made again while waiting.
type ProposalCounts struct {
	Total   int64 `json:"total"`
	OK      int64 `json:"ok"`
	Aborted int64 `json:"aborted"`
	Failed  int64 `json:"failed"`
	Retries int64 `json:"retries"`
}

// TransferLeaderRequest is the body of POST /v1/cluster/transfer-leader:
// the member to hand leadership to, by name or ID.
type TransferLeaderRequest struct {
	To string `json:"to"`
}

// TransferLeaderResult is its answer: the leader now, and its term.
type TransferLeaderResult struct {
	Leader   string `json:"leader"`
	LeaderID string `json:"leader_id"`
	Term     uint64 `json:"term"`
}

// Membership changes (POST /v1/cluster/members, POST
// /v1/cluster/members/{name}/promote, DELETE /v1/cluster/members/{name})
// are authenticated with the members' shared secret: the request carries
// MemberTimeHeader (Unix seconds) and MemberAuthHeader, the hex
// HMAC-SHA256 the cluster package computes (cluster.MemberChangeMAC) over
// the method, path, time and body. Any member takes them and passes them
// to the leader.
const (
	MemberTimeHeader = "X-Kvtool-Time"
	MemberAuthHeader = "X-Kvtool-Auth"
	// ForwardedHeader marks a request a member passed to the leader: the
	// leader does not pass it on again.
	ForwardedHeader = "X-Kvtool-Forwarded"
)

// MemberAddRequest is the body of POST /v1/cluster/members: add the
// member as a learner. ID is derived from the name.
type MemberAddRequest struct {
	Name     string `json:"name"`
	PeerAddr string `json:"peer_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	// StayLearner keeps it a learner (serve --learner); otherwise the
	// leader promotes it once it has caught up.
	StayLearner bool `json:"stay_learner,omitempty"`
}

// MemberInfo is one member in a MemberChangeResult.
type MemberInfo struct {
	Name        string `json:"name"`
	ID          string `json:"id"`
	PeerAddr    string `json:"peer_addr"`
	APIAddr     string `json:"api_addr,omitempty"`
	StayLearner bool   `json:"stay_learner,omitempty"`
}

// MemberChangeResult answers a membership change once it applied on the
// leader: the cluster's members then, its commit index, and (for a
// joiner) the voters the cluster's log starts from when the log is whole
// from index 1 (IDs as 16 hex digits).
type MemberChangeResult struct {
	ClusterID     string       `json:"cluster_id"`
	Members       []MemberInfo `json:"members"`
	Voters        []string     `json:"voters"`
	Learners      []string     `json:"learners"`
	CommitIndex   uint64       `json:"commit_index"`
	InitialVoters []string     `json:"initial_voters,omitempty"`
}
