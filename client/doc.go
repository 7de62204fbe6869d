// Package client is the Go client of the HTTP API that `kvtool serve`
// exposes (package server). The JSON bodies both sides encode and decode
// are package api's types, so the contract is written down once.
//
// # The API
//
//	GET    /v1/kv/{key}      raw value, header X-Kvtool-Index; 404 if absent
//	PUT    /v1/kv/{key}      body = value              -> {"index": N}
//	DELETE /v1/kv/{key}                                -> {"index": N}
//	POST   /v1/txn           transaction JSON          -> {"index": N} | 409 {"error", "op"}
//	GET    /v1/scan          ?prefix=&start=&end=&limit= -> [{"key", "value"}, ...]
//	                         &format=jsonl -> {"key", "value"} lines, the whole range
//	GET    /v1/status        applied and durable index, shards, WAL segments
//	GET    /v1/hash          {"applied_index", "state_hash"} of one snapshot
//	POST   /v1/admin/rotate  seal the active WAL segment
//	GET    /metrics          Prometheus text format
//	GET    /v1/cluster       a cluster member's view of its cluster (ClusterStatus)
//	POST   /v1/cluster/transfer-leader  {"to": NAME}  (TransferLeader)
//
// Every answer carries "Server: kvtool/v1" (api.ServerID); an answer without it
// comes from another program at the address, and is a *NotKvtoolError
// (errors.Is ErrNotKvtool), never taken for a kvtool answer. Every error
// answer is {"error": "..."}; a Client turns it into an *Error carrying the
// HTTP status, or a *CheckFailedError for a 409. Nothing answering at all
// wraps ErrNoServer. Keys travel
// percent-encoded in the path (KeyPath), so any byte string is a key.
//
// Every write (Put, Delete, Txn, TxnJSON) carries a request ID of its
// own (X-Kvtool-Request-Id). An answer 503 with Retry-After (a cluster
// without a quorum for now, a busy server) is retried with the same ID and
// body, up to SetWriteRetries times (DefaultWriteRetries), waiting what
// Retry-After asks (at most 5s): a cluster applies an ID at most once, and
// a single node gives Retry-After only when nothing changed. GetWith with
// ReadOptions.Linearizable reads through the cluster's ReadIndex.
//
// Only stdlib and package api are imported: a program that talks to a
// server does not link the store.
//
// # Concurrency
//
// A Client is safe for concurrent use by many goroutines; it keeps a pool of
// connections sized for a few hundred concurrent requests.
package client
