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
	// ErrUnknownMember is wrapped when a request names a member that is
	// not in the cluster (or not a voter, for a leadership transfer).
	ErrUnknownMember = errors.New("kvtool/cluster: no such member")
	// ErrClusterMismatch is wrapped when a data directory or a peer
	// belongs to another cluster or node.
	ErrClusterMismatch = errors.New("kvtool/cluster: belongs to another cluster")
)
