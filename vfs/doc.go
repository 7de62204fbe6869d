// Package vfs is the file-system interface every kvtool package does its
// I/O through, so that tests can swap the operating system (OSFS) for an
// in-memory file system that simulates crashes (MemFS) or for a wrapper
// that injects errors (ErrorFS).
//
// The interface is deliberately small: what a log-structured store needs
// and nothing more. It adds no bytes of its own to any file. Durability is
// explicit: a file's bytes are durable only after File.Sync, and a
// created, renamed or removed directory entry only after FS.SyncDir on its
// directory; a rename across directories needs a SyncDir of both; a
// directory made by MkdirAll needs a SyncDir of its parent, like a file.
// MemFS enforces exactly that rule in its crash images, so code that
// forgets a sync fails its crash tests.
//
// # Crash testing
//
// Run a workload on a MemFS and call CrashClone at the points to test; each
// clone is what a machine could find after power loss there. To crash at
// every sync boundary, run the workload once, read SyncCount, then rerun it
// with SetSyncHook taking a CrashClone at sync n for each n. Recover from
// the clone and check that everything acknowledged before the crash is
// present; MemFS.Tree dumps a whole image to compare.
//
// # Concurrency
//
// An FS is safe for concurrent use. A File is safe for concurrent ReadAt
// calls; writes to one File must be serialized by the caller.
package vfs
