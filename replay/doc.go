// Package replay rebuilds state from durable history: Dir reads a data
// directory's manifest, applies its base checkpoint and delta chain
// (Snapshot), then the WAL transaction records after them in index order
// (WAL, Entries), handing every effect to a Target. The store uses it when
// it opens a data directory and `kvtool replay` uses the same code
// offline, so there is exactly one recovery path; ToIndex stops it at a
// past index (point-in-time recovery).
//
// # Bytes
//
// It reads and never writes: checkpoints and deltas through their
// packages, WAL entries through segment.Reader. A FrameWALTxn entry's data
// is a format transaction record (format/txnrec.go: count, then per effect
// kind u8 | key | value), the final puts and deletes of one transaction;
// no-op and configuration entries carry no effects. Replay is idempotent:
// a record never holds increments, so applying an entry the target
// already has changes nothing.
//
// # Concurrency
//
// A replay runs in the calling goroutine; the Target is called from it
// only, and the key and value it gets are valid during the call. Memory, an
// in-memory Target, is owned by one goroutine.
package replay
