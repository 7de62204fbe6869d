// Package xferstore is where package transfer meets package store: it
// implements transfer.Source over a live store (StoreSource, what `kvtool
// serve` sends from) and over an offline data directory (DirSource,
// `kvtool transfer send --data`). Package transfer knows only its Source
// and Replica interfaces, never the store (a *store.Store opened as a
// replica already is a transfer.Replica).
//
// # Bytes
//
// A snapshot is a checkpoint file, read as it lies on disk: the store's
// base checkpoint when the WAL after it is short (no larger than the base,
// by default: the receiver replays it), else one written for the
// transfer (a live store's DATA/snap; for a DirSource DATA/.transfer/send,
// kept until Cleanup so a restarted sender offers the same snapshot). The
// tail is the store's WAL, read entry by entry.
//
// # Leases
//
// A StoreSource pins what a peer still needs with a store lease (visible
// in Store.Leases, respected by compaction): the checkpoint file and the
// WAL after the receiver's index. Retain moves the lease up; a session
// whose connection broke parks its lease until it expires, so a receiver
// that comes back can resume.
//
// # Concurrency
//
// A StoreSource is safe for concurrent sessions. A DirSource holds the
// directory's lock while open and serves one Send at a time, as `kvtool
// transfer send` runs it.
package xferstore
