// Package testfault holds bugs that tests plant in the storage code to show
// that the crash tests and the recovery drills can fail: a check that passes
// on correct code proves little until it has been seen to fail on broken
// code. Nothing but a test sets them (directly, or through Plant in a test
// binary that runs kvtool as a child process); each is consulted at exactly
// one place in the code it breaks, and costs an atomic load there.
//
// # Concurrency
//
// The faults are atomics: set them before the code under test runs and
// clear them after.
package testfault

import (
	"fmt"
	"sync/atomic"
)

// WALAckBeforeWrite, when true, makes the WAL's flusher acknowledge each
// batch (durable index, OnDurable, waiters released) before it writes the
// batch, and write it only when it acknowledges the next one: the newest
// acknowledged commits are never on disk, so a crash or a SIGKILL at any
// moment loses them. It is the bug of a store that acknowledges before the
// fsync, made wide enough that a single kill always hits it.
var WALAckBeforeWrite atomic.Bool

// NameWALAckBeforeWrite is WALAckBeforeWrite's name for Plant.
const NameWALAckBeforeWrite = "wal-ack-before-write"

// ClusterAckBeforeQuorum, when true, makes a cluster member answer a
// write as soon as raft has taken its proposal into this node's log,
// without waiting for a quorum to log it or for this node to apply it: a
// leader cut off from the others acknowledges writes that a new leader
// then replaces. It is the bug of a replicated store that acknowledges
// before the quorum.
var ClusterAckBeforeQuorum atomic.Bool

// NameClusterAckBeforeQuorum is ClusterAckBeforeQuorum's name for Plant.
const NameClusterAckBeforeQuorum = "cluster-ack-before-quorum"

// Plant turns on the fault called name; "" plants nothing. A test binary
// that re-executes itself as kvtool calls it with a name the test passed in
// its environment.
func Plant(name string) error {
	switch name {
	case "":
	case NameWALAckBeforeWrite:
		WALAckBeforeWrite.Store(true)
	case NameClusterAckBeforeQuorum:
		ClusterAckBeforeQuorum.Store(true)
	default:
		return fmt.Errorf("kvtool/testfault: unknown fault %q (known: %s, %s)", name, NameWALAckBeforeWrite, NameClusterAckBeforeQuorum)
	}
	return nil
}
