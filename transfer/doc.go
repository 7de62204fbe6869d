// Package transfer streams a snapshot of a store and its WAL tail to a
// joining peer over any byte stream (TCP, TLS, a pipe), in checksummed
// chunks under a receiver-driven credit window, and resumes a broken
// transfer from the first chunk the receiver does not hold durably instead
// of from byte zero. It knows a store only through its Source and Replica
// interfaces; package xferstore implements Source over a live store and an
// offline data directory.
//
// # Stream layout
//
// Each direction is a format file header (magic KVT-XFR, ext: role u8 |
// mode u8 | 6 zero bytes) then format frames (xxh64 over length, type and
// payload). Payloads are little-endian, fixed-size except tail and error,
// and checked against per-type limits before they are read (format/xfer.go):
//
//	+------------+------+------------------------------------------------------------+
//	| frame      | from | payload                                                    |
//	+------------+------+------------------------------------------------------------+
//	| Hello   37 | both | version u16 | role u8 | 0[5] | nonce[32] | proof[32]        |
//	|            |      | [S, if R asked: apiLen u16 | api] (format/xferhello.go)   |
//	| Request 38 | R    | proof[32] | flags u32 | chunkSize u32 | storeID[16] | epoch  |
//	|            |      | term | snapIndex | snapTerm | snapSum | firstMissing |       |
//	|            |      | walLast | window (u64 each)                                  |
//	| Session 32 | S    | proof[32] | nonce[32] | version u16 | flags u16 | chunkSize  |
//	|            |      | u32 | storeID[16] | epoch | term | snapIndex | snapTerm |     |
//	|            |      | snapSum | totalSize | chunkCount | resumeFrom | tailFrom |   |
//	|            |      | segmentSize (u64 each)                                     |
//	| Chunk   33 | S    | seq u64 | offset u64 | rawLen u32 | wireLen u32 | xxh64 u64 |
//	|            |      | codec u8 | 0[7] ... then wireLen data bytes, outside frame |
//	| Tail    34 | S    | index u64 | term u64 | type u8 | data (one WAL entry)      |
//	| Final   35 | S    | chunksSum | snapIndex | totalSize | chunkCount | tailEnd |  |
//	|            |      | 0 (u64 each) | mac[32]                                     |
//	| Credit  36 | R    | firstMissing | limit | walLast | applied (u64 each)         |
//	| Nack    39 | R    | seq u64 | reason u8 | 0[7]                                  |
//	| Done    40 | R    | applied u64 | 0[8]                                        |
//	| Error   41 | both | code u16 | msgLen u16 | message (at most 1 KiB)            |
//	+------------+------+------------------------------------------------------------+
//
// A chunk's data follows its frame, covered by the header's xxh64 (which
// the frame checksum covers), so each byte is hashed once per side; the
// final frame's chunksSum is the xxh64 of the chunks' xxh64s in order.
//
// On a connection (hello version 2) every frame after the hellos is
// followed by a 16-byte tag, outside the frame (for a chunk, after its
// data): HMAC-SHA256, truncated, under a key for its direction derived
// from the secret and both nonces (HKDF-SHA256), over the frame's number
// in its direction, its length and type, its payload and a chunk's data.
// The checksums catch damage, the tags an attacker who recomputes them: a
// frame whose tag fails ends the session with ErrAuth before anything it
// carried is recorded (a chunk whose own xxh64 fails is damage, and is
// asked for again).
//
// # Protocol
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
// before the sender proved it, and accepts no frame after the hellos
// without its tag. Chunks and tail share the connection: one
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
// stream; Send and Receive read their peer's frames on goroutines of their
// own and stop them before they return (a stream without deadlines is
// closed to stop them). Serve accepts connections and runs Send on each:
// connections in their handshake have a short deadline and a bound of
// their own, and only authenticated sessions take one of its slots.
package transfer
