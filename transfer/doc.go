// Package transfer streams a snapshot of a store and its WAL tail to a
// joining peer over any byte stream (TCP, TLS, a pipe), in checksummed
// chunks under a receiver-driven credit window, and resumes a broken
// transfer from the first chunk the receiver does not hold durably instead
// of from byte zero.
//
// # Stream layout
//
// Each direction is a format file header (magic KVT-XFR, ext: role u8 |
// mode u8 | 6 zero bytes) then format frames (xxh64 over length, type and
// payload). Payload layouts are in format/xfer.go. A chunk frame carries
// only the chunk's 40-byte header; its data follows the frame, covered by
// the header's xxh64, so each byte is hashed once per side:
//
//	+--------+---------+-------------------------------------------+------+
//	| frame  | type 33 | seq | offset | rawLen | wireLen | xxh64 | codec | data |
//	+--------+---------+-------------------------------------------+------+
//
// Duplex (a connection; R = receiver, S = sender):
//
//	R: header, Hello{nonce_r}
//	S: header, Hello{nonce_s, HMAC(secret, "sender", nonce_r, nonce_s)}
//	R: Request{HMAC(secret, "receiver", nonce_s, nonce_r), store, epoch,
//	   partial snapshot ID + first missing chunk + WAL last | store's last index}
//	S: Session{store, epoch, term, snapshot ID (index, term, checksum),
//	   chunk size, total size, chunk count, resume-from chunk, tail-from index}
//	S: Chunk... Tail... (interleaved)  Final{hash of the chunk checksums, tail end}
//	R: Credit{first missing, limit}... Nack{seq}... Done{applied index}
//
// The secret never crosses the wire; the receiver touches nothing on disk
// before the sender proved it. Chunks and tail share the connection: one
// authentication, one ordering, one lease; TCP backpressure bounds the
// tail and credits bound the chunks. A sender never has chunks at or past
// the credit limit in flight; the receiver moves the limit only after the
// chunks below it are fsync'd and recorded, so a resume resends at most
// one window. One-way streams (pipes, saved files) carry the same frames
// in one direction: the session is HMAC-signed and the final frame holds
// an HMAC of the whole stream.
//
// # Receiver's data directory
//
//	DATA/.transfer/<index>-<term>-<checksum>/snapshot.part  chunks at their offsets
//	DATA/.transfer/<...>/PROGRESS   header, session, one chunk frame per verified chunk, final
//	DATA/wal/                       the tail, a WAL starting at the snapshot index + 1
//
// Nothing in a stream names a path. Cutover checks the chunk checksums
// against the final frame, verifies the snapshot as a checkpoint (every
// block, its whole-file checksum), renames it into DATA/snap and publishes
// the manifest: the single commit point. A receiver restarted at any point
// resumes from what PROGRESS recorded, after checking those chunks' bytes.
//
// # Concurrency
//
// Send, Receive, WriteStream, ReadStream and VerifyStream each own their
// stream; Send reads the receiver's frames and the source's log on
// goroutines of its own and stops them before it returns.
package transfer
