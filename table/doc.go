// Package table writes, reads and verifies sorted-table files: format
// blocks of sorted entries, a block index and a fixed-size footer, so a
// reader finds everything from the file's end and a lookup decodes only
// the blocks it needs. Checkpoints and deltas are two Kinds: a Kind gives
// its magic, its ext's fields (one ExtCodec codes them) and what header,
// footer and name must agree on; its methods serve every kind alike.
//
// # On-disk layout
//
//	+-------------------------------------------------------------+ 0
//	| file header: magic (MagicCheckpoint|MagicDelta), version,    |
//	|   ext (kind-specific, given by the caller), xxh64            |
//	+-------------------------------------------------------------+ header end
//	| FrameBlock frame 0: a format block of sorted entries, cut    |
//	|   at ~BlockSize uncompressed bytes, compressed per block     |
//	| ... FrameBlock frame n-1 (frames follow without gaps)         |
//	+-------------------------------------------------------------+ index offset
//	| FrameIndex frame(s), payload: count u32, then per block:     |
//	|   firstLen uvarint | first key | lastLen uvarint | last key   |
//	|   | frame offset u64 | frame length u32 | entry count u32      |
//	|   (one frame unless the index passes 4 MiB; then several)     |
//	+-------------------------------------------------------------+ size - 96
//	| FrameFooter frame, fixed 16 + 80 bytes, payload:             |
//	|   indexOffset u64 | indexLength u64 | blocks u64 | puts u64   |
//	|   | tombstones u64 | hash u64 | index u64 | fromIndex u64     |
//	|   | term u64 | fileChecksum u64                               |
//	+-------------------------------------------------------------+ size
//
// Integers are little-endian. fileChecksum is xxh64 over every byte before
// the footer frame; hash is format.StateHasher's digest of the entries in
// key order (a tombstone as keyLen u64 | key | 2^64-1), for a checkpoint
// the state hash of its pairs.
//
// # Concurrency
//
// A Writer is owned by one goroutine (it compresses blocks on goroutines of
// its own and waits for them in Close and Cancel). A Reader is safe for
// concurrent Get and NewIter calls; each Iter is owned by one goroutine.
// Blocks and MapBlocks decode on goroutines of their own, which end before
// the call returns, and call back on the caller's goroutine, in file order.
package table
