package format

// Frame types of a cluster node's raft log and raft state file (see
// cluster/doc.go). Like every frame type they are part of the on-disk format
// and never change.
//
// The raft log is a WAL (segment files, records with index and term) in
// DATA/raft. An empty raft entry is a FrameWALNoop record and a membership
// change a FrameWALConf record (payload: a kind byte, then the raft
// ConfChange or ConfChangeV2 message); a client proposal is a FrameWALRaft
// record, whose payload is the cluster's request encoding: the operations to
// evaluate at apply time, not their effects (a FrameWALTxn record holds
// effects).
const (
	FrameWALRaft   FrameType = 7  // a raft entry holding a client request (payload: index, term, request)
	FrameRaftState FrameType = 48 // the body of DATA/raft/STATE: hard state, conf state
	// FrameRaftRemoved is the body of DATA/raft/REMOVED (JSON: cluster,
	// node, index): the member was removed from its cluster.
	FrameRaftRemoved FrameType = 52
	// FrameRaftJoin is the body of DATA/raft/JOIN (JSON): a member that
	// joined a running cluster: its identity, the members it learned, the
	// index it catches up to before it serves.
	FrameRaftJoin FrameType = 53
)
