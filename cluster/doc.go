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
// StartMember does the wiring from the serve flags; the HTTP API is
// server.New with Options.Cluster:
//
//	members, err := cluster.ParseMembers(clusterFlag)      // --cluster n1=HOST:PORT,...
//	st, err  := store.Open(store.Options{Dir: dir, Create: true, Replica: true, ...})
//	ln, err  := net.Listen("tcp", peerListen)             // --peer-listen
//	m, err   := cluster.StartMember(cluster.MemberConfig{Name: nodeFlag, Members: members,
//	                PeerListener: ln, APIAddr: apiListener.Addr().String(), Secret: secret,
//	                TLS: tlsConfig /* optional */, Node: cluster.Config{Dir: dir, Store: st}})
//	h := server.New(st, server.Options{Cluster: m, ...})  // then server.Run on the API listener
//	// m.Done() closes if the member fails (fail stop): shut the process down, exit non-zero.
//	// shutdown: stop the API (server.Run returns), m.Close() (transport, listener), st.Close()
//
// Member IDs are MemberID(name); the cluster ID is the one in the data
// directory's raft state, or ClusterIDOf the founding names for a new one.
// Every member dials every other one and tells it its name and API
// address in the first frame, so Member.Status lists each member's API
// once it has connected. Every node of a cluster must use the same
// DedupWindow. Keys under DedupPrefix are the cluster's: the API refuses
// writes to them and hides them from scans.
//
// # Peer transport
//
// TCPTransport: one listener per member; a connection carries raft
// messages one way (tcpwire.go: hello, mutual HMAC proof over nonces, then
// frames each authenticated with a session key and its sequence number;
// the first frame is the dialer's name and API address). TCPConfig.TLS
// adds mutual TLS under it (a peer without a certificate of the cluster's
// CA is refused before the hello). Each peer has a bounded queue, so a
// dead or slow peer costs dropped messages (raft retransmits), never a
// blocked leader.
//
// # Operations
//
// Node.TransferLeader moves leadership (from any member: a follower's
// request is forwarded to the leader). Status counts proposals by outcome
// (ok, aborted by a check, failed: no quorum in time or stopped), leader
// changes, ReadIndex reads, snapshots raft asked for, and, on the leader,
// each peer's match index and smoothed heartbeat round trip. A member
// whose disk fails (raft log, state or store) stops: Err wraps ErrFailed,
// Done closes, calls return ErrStopped, and it sends nothing more; the
// others go on.
//
// # Concurrency
//
// Node's methods are safe for concurrent use; one goroutine runs the
// Ready loop (ready.go: persist, send, apply, advance). Transports'
// Send never blocks; their handlers are called from many goroutines.
package cluster
