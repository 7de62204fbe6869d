// Package datadir works on a whole data directory at once, offline: Verify
// checks every file and reports every fault with its file and offset,
// Inspect summarises what the directory holds, and Replay rebuilds the state
// at any index the retained files cover (point-in-time recovery). The CLI's
// verify, inspect, replay, checkpoint verify and delta verify are thin
// wrappers around it.
//
// # What a data directory holds
//
//	DATA/MANIFEST            names the base, its deltas, the first WAL index needed
//	DATA/snap/*.ckpt         checkpoints: the manifest's base, or garbage
//	DATA/snap/*.delta        deltas: the manifest's chain, or garbage
//	DATA/wal/*.wal           WAL segments, contiguous; must cover the
//	                         manifest's WAL first index through the end
//	DATA/wal/*.quarantine    bytes cut by a repair (kept, never replayed)
//	DATA/raft/               a cluster member's raft log and state (its own to check);
//	                         a TRUNCATE there or in wal/ is an unfinished cut, reported
//	*.tmp-<nonce>            unpublished temporary files (never trusted)
//
// A fault is damage that recovery would trip on or that loses history:
// a bad checksum, a file the manifest names that is missing or differs from
// what the manifest recorded, a broken delta chain, a WAL gap, torn tail or
// foreign segment, a WAL that does not cover what the manifest needs. Files
// the manifest does not name are never trusted by recovery, so they are
// notes, not faults.
//
// # Concurrency
//
// Every function only reads: none creates, locks, renames or writes a file
// of the directory (Replay writes only its Out file). They may run beside a
// server using the directory, and then may see a record being appended as a
// torn tail or a file being replaced; run them again to confirm damage. All
// functions are safe to call concurrently.
package datadir
