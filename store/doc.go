// Package store is the live key-value store: state split into shards of
// immutable copy-on-write B-trees, multi-key multi-shard transactions, a
// commit path through the WAL's group commit, and one published root that
// readers load without ever waiting.
//
// # Commit path
//
//	Commit ─► gates (ascending shard order, ctx) ─► stage private copies ─► checks
//	       ─► one WAL record (segment.Enqueue) ─► shards' newest = staged ─► release gates
//	       ─► wait durable ─► [WAL flusher: onDurable] publish entries in index order,
//	          one atomic root swap per fsync ─► acknowledge
//
// A failed check drops the private copies: that is the whole rollback, and
// nothing is logged. If the check saw a value that is logged but not yet
// durable, the failure is not reported until that value is published (then
// the transaction is decided again against the published root) or the
// store failed: a verdict never rests on data that may never exist. Because
// gates are released once the record is queued,
// the next transaction on a shard stages on top of one that is logged but
// not yet durable, and shares its fsync. The published root is always the
// state after a prefix of the log, so no reader ever sees part of a
// transaction, even one that spans shards.
//
// # Bytes
//
// The store writes only through segment (WAL records whose data is a
// format.AppendTxnRecord of final effects) and manifest. See those packages.
//
// # Concurrency
//
// All Store methods are safe for concurrent use. A Snapshot is immutable and
// safe for concurrent use; the value slices it returns must not be modified.
package store
