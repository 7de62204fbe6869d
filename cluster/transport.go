package cluster

import (
	"context"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Transport carries raft messages between the members of a cluster. Send
// never blocks: each peer has a bounded queue, and a message that finds it
// full is dropped (raft retransmits) and the peer reported unreachable, so
// a dead or slow peer never holds up the leader or grows its memory.
type Transport interface {
	// Handle sets the receiver of messages from peers; until it is called
	// they are dropped. A Node calls it when it starts.
	Handle(h Handler)
	// Send queues msgs for their recipients and returns at once. It may be
	// called from many goroutines at once (a member forwards proposals
	// to the leader outside its Ready loop, batch.go).
	Send(msgs []*pb.Message)
	// Close stops sending and receiving and waits for the transport's
	// goroutines.
	Close() error
}

// Handler receives what a Transport delivers. Its methods may be called
// from many goroutines at once.
type Handler interface {
	// Receive steps a message from a peer into raft.
	Receive(ctx context.Context, m *pb.Message) error
	// Unreachable reports that a message to peer id could not be sent.
	Unreachable(id uint64)
}
