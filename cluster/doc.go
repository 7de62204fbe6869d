// Package cluster replicates a store across three (or five) nodes with
// go.etcd.io/raft/v3: the raft log is a WAL in our segment format, the
// Ready loop applies committed entries to each node's store, and a peer
// transport carries raft messages.
package cluster
