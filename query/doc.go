// Package query runs read-only SQL (modernc.org/sqlite, pure Go) over one
// consistent state of a store and over its data directory's own files,
// through virtual tables, one file each:
//
//	kv(key, value)                  the state: a live snapshot, or rebuilt from the files
//	kv_at(index)                    table-valued: the state at a past log index (replay)
//	wal(index, term, segment, offset, op, key, value, delta)
//	segments, checkpoints, deltas   the directory's files, as verify and list read them
//	manifest                        the manifest, one row
//	leases                          a live store's retention leases
//	members                         a clustered node's members (empty on a single node)
//
// Each table's file says what its BestIndex pushes down and why what it
// leaves to SQLite is safe to leave: pushdown narrows a scan, and SQLite
// checks each row again, except for the key constraints kv and kv_at
// decide exactly as SQLite would (keyplan.go, exactFor). Keys are TEXT;
// values are TEXT when they are valid UTF-8 and BLOBs otherwise.
//
// # Read-only
//
// A session is a private in-memory SQLite database holding only these
// tables, with PRAGMA query_only on and an authorizer that refuses every
// statement that would write, attach a database, change a setting or load
// an extension (ErrReadOnly names what was refused). The tables only read
// files; nothing is created, locked or written, so a session may run on a
// read-only directory and beside a server using it.
//
// # Concurrency
//
// A Session runs one statement at a time and is not safe for concurrent
// use. Opening one creates its tables (about a millisecond); it keeps the
// statements it ran, so running a text again skips parsing and planning,
// and Reset (or a Pool) points it at another source keeping both. A Pool
// is safe for concurrent use. Cancelling a statement's context stops it:
// SQLite is interrupted, and the tables' cursors check the context between
// rows. A scan lets other goroutines run every 200 µs or so (it looks
// every few dozen rows), or calls Source.Yield every few dozen rows (a
// server paces long queries with it).
package query
