// Package node runs one kvtool node: it opens the store, serves the HTTP
// API, accepts transfers to joining nodes, runs automatic maintenance,
// joins another node as a read replica or runs a cluster member
// (Config.Cluster), and shuts all of it down in order.
// `kvtool serve` only parses its flags into a Config and calls Run.
//
// # Life of a node
//
// Run opens in dependency order and closes in reverse:
//
//	bind the API listener, the transfer listener, the debug listener,
//	     the peer listener                                            (a port in use fails before any file is touched)
//	open the store (a joining node: only once it is complete; a member: as a replica)
//	start the cluster member (cluster.StartMember)                    (a member only)
//	Events.Listening                                     (the caller announces the node)
//	serve: the API, beside the transfer accept loop, maintenance, the join,
//	       the debug listener's profiles (Config.DebugListen)
//	       and the member's watch (a member that fails stops the node: fail stop)
//	stop:  the API (requests in flight finish, up to ShutdownTimeout),
//	       then the accept loop and sends, maintenance and the join,
//	       then the member (raft, its transport and peer listener), then the store
//
// A part that fails says so: Run returns an *Error naming it (Part), and
// a join that retrying cannot mend stops the node the same way.
//
// # Bytes
//
// A node writes nothing of its own: the store owns the data directory,
// and package transfer what a join receives (DATA/.transfer).
//
// # Concurrency
//
// Run blocks until the node stopped; it may be called for several nodes
// at once (each with its own Config). Events are called from the node's
// goroutines, never under one of its locks. The library never prints: it
// logs through Config.Logger and reports through Config.Events.
package node
