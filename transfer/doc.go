// Package transfer streams a snapshot of a store and its WAL tail to a
// joining peer over any byte stream (TCP, TLS, a pipe), in checksummed
// chunks under a receiver-driven credit window, and resumes a broken
// transfer from the first chunk the receiver does not hold durably instead
// of from byte zero. It knows a store only through its Source and Replica
// interfaces; package xferstore implements Source over a live store and an
// offline data directory.
//
// # Bytes
//
// Each direction is a format file header then format frames; format/xfer.go
// has the frame table and the authentication tag every frame carries after
// the hellos. On a connection (R = receiver, S = sender):
//
//	R: Hello{nonce_r}                   S: Hello{nonce_s, proof of the secret}
//	R: Request{proof, what it holds: partial snapshot, first missing chunk, WAL last}
//	S: Session{snapshot ID, chunk size and count, resume-from chunk, tail-from index}
//	S: Chunk+data... Tail... Final{hash of the chunk hashes, tail end}
//	R: Credit{first missing, limit}... Nack{seq}... Done{applied index}
//
// The secret never crosses the wire, and the receiver touches nothing on
// disk before the sender proved it. The receiver moves the credit limit
// only past chunks it fsync'd and recorded, so a resume resends at most
// one window. One-way streams (pipes, saved files) carry the same frames
// in one direction, signed by an HMAC of the whole stream. The receiver
// writes DATA/.transfer/<snapshot ID>/{snapshot.part, PROGRESS} and the
// tail into DATA/wal; cutover verifies the snapshot as a checkpoint,
// renames it into DATA/snap and publishes the manifest: the one commit
// point. A restarted receiver resumes from what PROGRESS recorded.
//
// # Concurrency
//
// Send, Receive, WriteStream, ReadStream and VerifyStream each own their
// stream; Send and Receive read their peer's frames on goroutines of their
// own and stop them before they return (a stream without deadlines is
// closed to stop them). Serve accepts connections and runs Send on each:
// connections in their handshake have a short deadline and a bound of
// their own, and only authenticated sessions take one of its slots.
package transfer
