// Package cluster replicates a store across three (or five) nodes with
// go.etcd.io/raft/v3: raft decides the order and commitment of requests,
// its log is a WAL in our segment format, and every node applies committed
// entries, in log order and at raft's index, to its own store. Start says
// how a node wires it (store, transport, HTTP, shutdown).
//
// # On-disk layout
//
// A node's data directory is an ordinary store (opened with
// store.Options.Replica: its WAL holds one record per raft index, so
// replay, verify, checkpoints and transfers work as on one node) plus:
//
//	DATA/raft/<16 hex>.wal  raft log segments (segment package); a record per raft entry:
//	                        FrameWALRaft = a request (request.go: ops evaluated at apply time),
//	                        FrameWALNoop = an empty entry, FrameWALConf = kind u8 | ConfChange(V2)
//	DATA/raft/STATE         format header (KVT-RFT) + one FrameRaftState frame (xxh64 over it):
//	+---------+--------+------+------+--------+-----------+-----------+----------+------+----------+
//	| cluster | node   | term | vote | commit | confIndex | snapIndex | snapTerm | conf | snapConf |
//	+---------+--------+------+------+--------+-----------+-----------+----------+------+----------+
//	  u64 each; conf: autoLeave u8, then voters, learners, outgoing voters, next learners (u32 n, n x u64)
//	DATA/raft/TRUNCATE      while a cut of the log is unfinished (segment.TruncateAfter)
//	DATA/raft/incoming/<sender 16 hex>/  a snapshot being received: a data directory
//	                        transfer/ fills (.transfer/<id>/{snapshot.part,PROGRESS} while
//	                        partial, then a complete store at the snapshot's index); another
//	                        sender's is dropped, and all of it goes once installed
//	DATA/raft/.../*.old     such a directory being removed (renamed first, never half-named)
//	DATA/raft/JOIN          a member that joined a running cluster (marker.go): header (KVT-RFT) +
//	                        one FrameRaftJoin frame, JSON: its record, the members, the index it catches up to
//	DATA/raft/REMOVED       the member applied its own removal: header + FrameRaftRemoved frame, JSON
//	                        (cluster, node, index); Start refuses the directory (ErrRemoved)
//
// VerifyRaft (verify.go) checks all of it read-only for kvtool verify
// (datadir.VerifyOptions.Raft), as a start would read it.
//
// STATE is replaced atomically when the term or vote changes, before any
// message depending on it is sent, and when a membership change applies;
// its commit index is only a hint (at start raft's commit is raised to the
// store's applied index). A suffix a new leader replaces is cut with
// segment.TruncateAfter, so a crash never leaves a mix of old and new
// entries. Request IDs are deduplicated in the replicated state
// (DedupPrefix).
//
// Raft snapshots are our checkpoints (snapshot.go): the leader streams a
// point-in-time checkpoint plus the log tail to a fixed index with
// transfer/ over the peer listener's snapshot stream, then sends raft's
// MsgSnap; the member installs it with STATE as the commit point (snapshot
// index, term and membership saved, then the raft log discarded to start
// after it), then the store (store.InstallState), resuming that at Start
// after a crash; until then CheckInstall tells tools that read the
// directory without starting the member that an install is pending.
// A joiner writes JOIN as soon as the cluster added it (WriteJoin), before
// anything else. Compaction (retention.go) follows the store's
// checkpoints: STATE's snapshot index moves first, then whole segments
// below it go (segment.Log.DropBefore), never below what a peer's lease on
// the leader pins (its match index, capped in bytes, expiring when the
// peer is silent) nor the log a snapshot transfer holds for its grace
// period.
//
// Membership (conf.go): AddLearner, Promote, Remove and Replace (one joint
// ConfChangeV2) propose a change and return once the applied ConfState
// shows it, proposing it again when raft dropped it (another change
// pending, a leader change). Every conf entry is checked at apply against
// the membership in force (checkConf: what raft would panic on, a voter
// made a learner again, a voter made of a non-member); a rejected one is
// a no-op for raft and answers its proposer ErrConfRejected. The record
// of an added member (name, ID, peer and API address, MemberRecord)
// travels in the change's Context and is written in the replicated state
// under MemberPrefix by the same apply, so checkpoints carry every peer
// address; Config.OnMembership tells the Member, which adds and removes
// transport peers. Promotion happens on the leader, only while the
// learner replicates and trails by at most PromoteLag entries and 10%; the
// leader promotes a learner whose record does not ask to stay one on its
// own. A joiner (serve --join-cluster, JoinRecord) starts raft on an
// empty store from the voters the cluster's log starts from, and replays
// the log's changes; if that log was compacted it starts with no
// membership until a snapshot brings one. A leader removes itself only
// after handing leadership over; a removed follower is sent the append
// that commits its removal (farewells), writes REMOVED, and stops.
//
// A member is wired by StartMember from the serve flags (see its comment);
// the HTTP API is server.New with Options.Cluster. The peer transport
// (tcp.go, tcpwire.go) authenticates every frame with a session key after a
// mutual HMAC handshake (optional mutual TLS under it), its first frame
// names the dialer and its API address, Send writes to an idle link itself
// without blocking (tcpsend.go), and each peer has a bounded queue: a dead
// or slow peer costs dropped messages, never a blocked leader. A
// member whose disk fails stops (Err wraps ErrFailed, Done closes); the
// others go on.
//
// # Concurrency
//
// Node's methods are safe for concurrent use; one goroutine runs raft
// (a raft.RawNode: the others queue their messages, proposals and
// requests for it, rawnode.go) and its Ready loop (ready.go: persist,
// send, apply, advance; consecutive batches a Ready commits apply as one
// store run, apply.go), which writes and syncs the raft log itself unless
// it has durable entries to apply meanwhile (then the log's flusher
// goroutine does), one the compaction, and each snapshot transfer
// its own (at most one per peer sent, one received). Transports' Send
// never blocks; their handlers are called from many goroutines.
package cluster
