// Package checkpoint writes, reads, lists and verifies checkpoints: full
// snapshots of the store's state at one applied index, streamed from a
// frozen root while the store keeps running. A checkpoint is the Kind of
// table file (package table) that holds puts only, in global key order.
//
// # On-disk layout
//
// The file is named format.CheckpointName(index) in the snapshot
// directory. Integers are little-endian.
//
//	+---------------------------------------------------------------+
//	| file header, magic format.MagicCheckpoint, ext (36 bytes):     |
//	|   storeID [16] | index u64 | term u64 | shards u32             |
//	+---------------------------------------------------------------+
//	| FrameBlock frames: every key/value pair, ascending, as puts    |
//	| FrameIndex frame: first key, last key, offset, length, count   |
//	| FrameFooter frame: counts, state hash, index, term, checksum   |
//	+---------------------------------------------------------------+
//
// The header's checksum covers the ext; the footer repeats the index and
// term (its fromIndex is 0 and its tombstone count 0), and its hash is the
// state hash of the checkpoint's pairs (format.StateHasher). Open and
// Verify check that header, footer and file name agree.
//
// # Concurrency
//
// A Writer is owned by one goroutine; a Reader is safe for concurrent Get,
// NewIter and Ascend calls. Write only reads its Source, so the store can
// pass a published snapshot and keep committing.
package checkpoint
