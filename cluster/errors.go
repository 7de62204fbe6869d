package cluster

import "errors"

var (
	// ErrNoQuorum is returned (wrapped) by Propose and ReadIndex when the
	// cluster did not answer within the caller's deadline: no leader, or no
	// quorum reachable. A write may or may not have been applied; retrying
	// it with the same request ID applies it at most once. An HTTP server
	// answers 503 with Retry-After.
	ErrNoQuorum = errors.New("kvtool/cluster: no quorum answered before the deadline (retry with the same request ID)")
	// ErrStopped is returned (wrapped) by calls on a node that was closed
	// or has failed; Node.Err says why it failed.
	ErrStopped = errors.New("kvtool/cluster: node stopped")
	// ErrFailed is wrapped by Node.Err once the node stopped after an I/O
	// error on its raft log or state (fail stop: it acknowledges nothing
	// more; restart it to recover from what is durable).
	ErrFailed = errors.New("kvtool/cluster: node failed")
	// ErrInconsistent is wrapped by Node.Err (with ErrFailed) once raft
	// found the node's durable state impossible and the node stopped.
	ErrInconsistent = errors.New("kvtool/cluster: raft state inconsistent")
	// ErrUnknownMember is wrapped when a request names a member that is
	// not in the cluster (or not a voter, for a leadership transfer).
	ErrUnknownMember = errors.New("kvtool/cluster: no such member")
	// ErrClusterMismatch is wrapped when a data directory or a peer
	// belongs to another cluster or node.
	ErrClusterMismatch = errors.New("kvtool/cluster: belongs to another cluster")
	// ErrNotLeader is wrapped when a call must run on the leader (a
	// promotion, which checks the learner's progress) and this node is not
	// it: ask the leader.
	ErrNotLeader = errors.New("kvtool/cluster: not the leader")
	// ErrLagging is wrapped when a learner is refused promotion because
	// its log trails the leader's: wait and try again.
	ErrLagging = errors.New("kvtool/cluster: the learner lags the leader")
	// ErrMemberExists is wrapped when a member is added under a name the
	// cluster already has for another member.
	ErrMemberExists = errors.New("kvtool/cluster: a member of that name exists")
	// ErrConfRejected is wrapped when a membership change was committed
	// but rejected at apply (every node rejects it alike; nothing changed).
	ErrConfRejected = errors.New("kvtool/cluster: membership change rejected")
	// ErrNewerEntry is wrapped by Node.Err once the node stopped at a
	// committed entry whose format version is newer than this build's: a
	// member running a newer kvtool proposed it. Applying it as a no-op,
	// as a malformed entry is, would leave this member's state different
	// from the members that understood it; so the member stops before
	// applying it. Run the newer kvtool on this member and start it again.
	ErrNewerEntry = errors.New("kvtool/cluster: a committed entry is in a newer format than this kvtool knows")
	// ErrRemoved is wrapped by Node.Err once the node applied its own
	// removal, and by Start on a data directory whose member was removed
	// (its REMOVED marker): wipe the directory to join again.
	ErrRemoved = errors.New("kvtool/cluster: member removed from the cluster")
	// ErrDamaged is wrapped by Start when the member's raft directory
	// cannot be what any run of the member left (entries the store
	// applied or STATE's snapshot needs are in no file, a log without its
	// state): damage, as a CorruptionError is, which kvtool verify reports
	// and only a rebuild from the peers repairs.
	ErrDamaged = errors.New("kvtool/cluster: the member's raft directory is damaged")
)
