// Package store is the live key-value store: state split into shards of
// immutable copy-on-write B-trees, multi-key multi-shard transactions, a
// commit path through the WAL's group commit, and one published root that
// readers load without ever waiting.
//
// # Commit path
//
//	Commit ─► queue ─► [batch leader] gates of the batch's shards (ascending)
//	       ─► each txn: checks on the batch's view, its writes kept aside as effects
//	       ─► passed: effects into the batch's private shard copies (one copy per shard per batch)
//	       ─► one WAL batch for the batch's records (segment.EnqueueBatch) ─► shards' newest = copies
//	       ─► release gates ─► register the batch ─► hand the lead on
//	       ─► wait durable ─► [WAL flusher: onDurable] publish batches whole, in index order,
//	          one atomic root swap per fsync ─► acknowledge
//
// Committing goroutines take turns leading (batch.go): the leader commits
// every transaction queued, then wakes the oldest one still queued to lead
// the next batch. A failed check drops that transaction's effects (the
// whole rollback; the batch's other transactions go on) and nothing of it
// is logged. If the check saw a value that is logged but not yet
// durable, the failure is not reported until that value is published (then
// the transaction is decided again against the published root) or the
// store failed: a verdict never rests on data that may never exist. Because
// gates are released once the batch is queued in the WAL,
// the next batch stages on top of one that is logged but
// not yet durable, and may share its fsync. The published root is always the
// state after a prefix of the log, and a batch is published only whole, so
// no reader sees part of a transaction, even one that spans shards.
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
