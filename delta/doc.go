// Package delta writes, reads and verifies deltas — incremental snapshots
// holding, for every key changed in an index range (from, to], its value
// at to or a tombstone — checks delta chains for gaps, overlaps and foreign
// files, and merges a base checkpoint and its deltas into a new checkpoint
// by a streaming k-way merge. A delta is the Kind of table file (package
// table) that holds puts and tombstones.
//
// # On-disk layout
//
// The file is named format.DeltaName(from, to) in the snapshot directory.
// Integers are little-endian.
//
//	+-------------------------------------------------------------------+
//	| file header, magic format.MagicDelta, ext (42 + parentLen bytes):  |
//	|   storeID [16] | from u64 | to u64 | term u64 | parentLen u16       |
//	|   | parent (the base checkpoint's or the previous delta's name)     |
//	+-------------------------------------------------------------------+
//	| FrameBlock frames: every changed key, ascending: EntryPut with its |
//	|   value at `to`, or EntryDelete (a tombstone, no value)            |
//	| FrameIndex frame: first key, last key, offset, length, count       |
//	| FrameFooter frame: puts, tombstones, hash, index = to,             |
//	|   fromIndex = from, term, whole-file checksum                      |
//	+-------------------------------------------------------------------+
//
// The footer hash digests the delta's entries, tombstones included (see
// package table); it is not a state hash. An empty parent means the empty
// state at index 0 (a chain without a base checkpoint).
//
// # Concurrency
//
// Write and Merge only read their inputs; a Reader is safe for concurrent
// Get and NewIter calls; everything else is owned by one goroutine.
package delta
