// Package cluster replicates a store across three (or five) nodes with
// go.etcd.io/raft/v3: raft decides the order and commitment of requests,
// its log is a WAL in our segment format, and every node applies committed
// entries, in log order and at raft's index, to its own store.
//
// # On-disk layout
//
// A node's data directory is an ordinary store (opened with
// store.Options.Replica: its WAL holds one record per raft index, the
// transaction's effects or a no-op, so replay, verify, checkpoints and
// transfers work as on a single node) plus DATA/raft:
//
//	DATA/raft/<16 hex>.wal  raft log segments (segment package); a record per raft entry:
//	                        FrameWALRaft = a request (request.go: ops evaluated at apply time),
//	                        FrameWALNoop = an empty entry, FrameWALConf = kind u8 | ConfChange(V2)
//	DATA/raft/STATE         format header (KVT-RFT) + one FrameRaftState frame (xxh64 over it):
//	+---------+--------+------+------+--------+-----------+-----------+----------+------+----------+
//	| cluster | node   | term | vote | commit | confIndex | snapIndex | snapTerm | conf | snapConf |
//	+---------+--------+------+------+--------+-----------+-----------+----------+------+----------+
//	  u64 each; conf: autoLeave u8, then voters, learners, outgoing voters, next learners (u32 n, n x u64)
//
// STATE is replaced atomically (format.WriteFileAtomic) when the term or
// vote changes, before any message depending on it is sent, and when a
// membership change applies. The commit index in it is only a hint: at
// start raft's commit is raised to the store's applied index (the store
// applies committed entries only), and raft resumes applying after it.
// A follower's uncommitted suffix replaced by a new leader is cut with
// segment.TruncateAfter (newer segments removed newest first, then one
// truncated), so a crash never leaves a mix of old and new entries.
// Request IDs are deduplicated in the replicated state (DedupPrefix).
//
// # Snapshots
//
// Raft snapshots are our checkpoints: raft keeps only their metadata (the
// index and term the log starts after, in STATE); the bytes travel through
// transfer/. Not wired yet: the raft log is never compacted, and a MsgSnap
// (a member behind the log, which cannot happen without compaction) is
// reported failed to raft and counted (Status.SnapshotsNeeded); a node told
// to install one stops with ErrSnapshotNeeded.
//
// # Wiring a node (node/)
//
//	st  := store.Open(store.Options{Dir: dir, Create: true, Replica: true, ...})
//	ln  := net.Listen("tcp", peerListen)                 // --peer-listen
//	tr  := cluster.NewTCPTransport(cluster.TCPConfig{ID, ClusterID, Listener: ln,
//	           Peers: --cluster addresses, Secret: KVTOOL_SECRET / --secret-file})
//	n   := cluster.Start(cluster.Config{ID, ClusterID, Peers: --cluster IDs, Dir: dir, Store: st, Transport: tr})
//	// HTTP: PUT/DELETE/txn -> n.Propose(ctx, Request{ID: X-Kvtool-Request-Id, Txn})
//	//       (*store.CheckError -> 409; ErrNoQuorum -> 503 + Retry-After);
//	//       GET -> st.Snapshot() (local) or n.LinearizableSnapshot(ctx) (?consistency=linearizable);
//	//       /v1/status "cluster" -> n.Status(); tr.Peers() for links
//	// shutdown: n.Close() (closes tr), then st.Close()
//
// Every node of a cluster must use the same DedupWindow. Node IDs and the
// cluster ID are nonzero (derive them from names, e.g. a hash of "n1").
// Keys under DedupPrefix are the cluster's; the API should refuse writes
// to them and may hide them from scans.
//
// # Concurrency
//
// Node's methods are safe for concurrent use; one goroutine runs the
// Ready loop (ready.go: persist, send, apply, advance). Transports'
// Send never blocks; their handlers are called from many goroutines.
package cluster
