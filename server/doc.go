// Package server is the HTTP API of `kvtool serve`: an http.Handler over a
// *store.Store, and Run, which serves it until a context is cancelled and
// then shuts down without cutting off requests in flight.
//
// # Endpoints
//
//	GET    /v1/kv/{key...}   200 raw value | 404; X-Kvtool-Index = applied index
//	PUT    /v1/kv/{key...}   body = value; 200 {"index": N} once durable
//	DELETE /v1/kv/{key...}   200 {"index": N} once durable
//	POST   /v1/txn           transaction JSON; 200 {"index": N} | 409 {"error", "op", ...}
//	GET    /v1/scan          ?prefix=&start=&end=&limit=; [{"key","value"}] in key order, one page
//	                         &format=jsonl: the whole range streamed as JSON lines
//	GET    /v1/status        indexes, shards, WAL segments, checkpoint, deltas
//	GET    /v1/hash          {"applied_index","state_hash"} of one snapshot
//	POST   /v1/admin/rotate  seal the active WAL segment
//	GET    /metrics          Prometheus text format (the server's own registry)
//	GET    /v1/cluster       cluster member only: api.ClusterStatus, every member asked (?local=true: this one's view)
//	POST   /v1/cluster/transfer-leader  {"to": NAME or hex ID}; 200 {"leader","leader_id","term"} once it leads
//
// # Cluster members
//
// With Options.Cluster (a *cluster.Member) the server is a cluster
// member's API. PUT, DELETE and txn are proposed through raft with the
// X-Kvtool-Request-Id header as request ID (at most cluster.MaxRequestID
// bytes) and answered 200 {"index": N} once a quorum logged the entry and
// this member applied it (a read here right after sees it); a retried ID
// that already applied answers its first index with X-Kvtool-Duplicate.
// No quorum within WriteTimeout: 503 with Retry-After and a message saying
// the write may still apply (retry with the same ID); a stopped member:
// 503 without Retry-After (ask another). Reads (GET, scan, hash) are local
// by default (X-Kvtool-Index says how fresh); ?consistency=linearizable
// goes through ReadIndex (503 with Retry-After without a quorum). Keys
// under cluster.ReservedPrefix are refused in writes (400) and left out of
// scans; GET, the key count of /v1/status and /v1/hash still see them, so
// the hash matches `kvtool replay` of the member's data directory.
// /v1/status gains a "cluster" object (this member's view, nobody asked)
// and /metrics the kvtool_cluster_* series (term, leader changes,
// proposals by result, commit and apply lag, per-peer round trip, lag,
// link and drops, snapshot sends). Without Options.Cluster the commit path
// is the single node's, unchanged.
//
// The wire types live in package api. Keys are percent-encoded in the
// path (client.KeyPath), and a key is everything after /v1/kv/, decoded,
// exactly as sent: no path cleaning and no redirect ("x/../k" is the key
// "x/../k", never "k"); no other path is redirected either. Transaction
// keys and values are UTF-8 JSON strings or their _base64 forms; invalid
// UTF-8 is refused, never rewritten. Every error answer is JSON {"error": "..."}: 400
// for input that can never commit (and nothing changes), 404, 405 with an
// Allow header, 409 for a failed check (nothing changes), 413 for a body
// over its bound, 500 and 503 when the store has failed or is closed.
// Request bodies are bounded before they are read, each by its limit and
// all together by Options.MaxInflightBytes (503 with Retry-After when a
// body does not fit); a transaction is decoded as it arrives and refused at
// its first operation past a limit. A request's context is
// passed to Commit, so a client that goes away stops waiting for shard
// gates; once its record is logged a commit always completes. (Under Run,
// simple key requests and transactions take a lean HTTP/1.1 path, see
// connServer; there the context ends when the connection is cut, and a
// client that went away is noticed when its answer is written.)
//
// On a single node, the PUTs and DELETEs that keep-alive connections of
// that lean path send at the same time are merged into one transaction
// (one WAL record and one fsync; see writeBatcher): each is answered once
// that transaction is durable, with its index, which the requests merged
// with it share. A merge waits for every connection that writes, at most
// one and a half merged commits (3ms at most); transactions are never
// merged. kvtool_write_batch_requests counts the requests per merge.
//
// # Concurrency
//
// A *Server is safe for concurrent use; reads load one published snapshot
// each and never wait for writers. The server logs through the *slog.Logger
// it is given and never logs values.
package server
