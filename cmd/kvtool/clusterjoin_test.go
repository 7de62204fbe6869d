package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/internal/loopport"
)

// TestClusterJoinProcesses: three `kvtool serve --node` processes under
// HTTP writes; a fourth starts with --join-cluster (through a follower's
// API) and is killed with SIGKILL right after it was added, restarted (it
// resumes from raft/JOIN without asking again), and the leader is killed
// once while it catches up. The leader promotes it; all four reach the same
// state hash at the same applied index, with every acknowledged write on
// each. Then `kvtool cluster remove` removes an original member: it exits
// saying so, and the three left keep committing.
func TestClusterJoinProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills real processes; skipped with -short")
	}
	cp := newClusterProcs(t)
	for _, name := range cp.names {
		cp.start(name)
	}
	ld := newClusterLoad()
	stop := ld.run(cp)
	defer stop()
	ld.waitAck(t, ld.next(), "before the join")
	for ld.count() < 200 {
		ld.waitAck(t, ld.next(), "before the join")
	}

	peer4, err := loopport.Free()
	if err != nil {
		t.Fatal(err)
	}
	dir4 := filepath.Join(t.TempDir(), "n4")
	leader := cp.waitLeader(cp.names, "")
	via := cp.proc(without(cp.names, leader)[0]).l.ListenAddr
	join := func() *process {
		return startProcess(t, cp.bin, dir4, "--node", "n4", "--peer-listen", peer4, "--join-cluster", via)
	}
	p4 := join()
	p4.kill() // right after it was added: mid catch-up
	p4 = join()
	cp.kill(leader) // the leader, while the joiner catches up
	next := cp.waitLeader(without(cp.names, leader), leader)
	ld.waitAck(t, ld.next(), fmt.Sprintf("after killing leader %s during the join (new leader %s)", leader, next))
	cp.start(leader)
	if !strings.Contains(p4.stderr.String(), "resuming the join") || strings.Count(p4.stderr.String(), "added to the cluster") != 0 {
		t.Fatalf("the restarted joiner did not resume its join:\n%s", p4.stderr)
	}

	waitState(t, "n4 promoted to a voter", func() (bool, string) {
		st, err := cp.status(cp.waitLeader(cp.names, ""))
		if err != nil {
			return false, err.Error()
		}
		for _, m := range st.Members {
			if m.Name == "n4" {
				return m.Role != "learner", "n4 is " + m.Role
			}
		}
		return false, "n4 is not a member"
	})
	ld.waitAck(t, ld.next(), "after the promotion")
	stop()
	all := map[string]*process{"n4": p4}
	for _, name := range cp.names {
		all[name] = cp.proc(name)
	}
	h := waitSameHashOf(t, all)
	acked := ld.snapshot()
	cp.mu.Lock()
	cp.procs["n4"] = p4
	cp.mu.Unlock()
	for name := range all {
		cp.checkAcked(name, acked)
	}
	t.Logf("%d writes acknowledged; four members at index %d, state hash %s", len(acked), h.AppliedIndex, h.StateHash)

	gone := cp.waitLeader(cp.names, "") // remove the leader: it hands over first
	stdout, stderr, code := kvRun(t, "", "cluster", "remove", "--addr", p4.l.ListenAddr, gone)
	if code != exitOK {
		t.Fatalf("cluster remove %s: exit %d\n%s%s", gone, code, stdout, stderr)
	}
	old := cp.proc(gone)
	done := make(chan error, 1)
	go func() { done <- old.cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(old.stderr.String(), "removed from the cluster") {
			t.Fatalf("removed member %s exited with %v:\n%s", gone, err, old.stderr)
		}
	case <-time.After(clusterWaitLimit):
		t.Fatalf("removed member %s did not stop", gone)
	}
	left := without(append(cp.names, "n4"), gone)
	for i, name := range left {
		ctx, cancel := context.WithTimeout(t.Context(), clusterOpTimeout)
		_, err := cp.procs[name].c.Put(ctx, fmt.Sprintf("after-remove-%d", i), []byte("x"))
		cancel()
		if err != nil {
			t.Fatalf("write through %s after removing %s: %v", name, gone, err)
		}
	}
	rest := map[string]*process{}
	for _, name := range left {
		rest[name] = cp.procs[name]
	}
	waitSameHashOf(t, rest)
	stdout, stderr, code = kvRun(t, "", "serve", "--data", cp.dirs[gone], "--node", gone, "--cluster", cp.spec, "--listen", "127.0.0.1:0")
	if code != exitFailure || !strings.Contains(stderr, "REMOVED") {
		t.Fatalf("restart of removed member %s: exit %d\n%s%s", gone, code, stdout, stderr)
	}
}

// waitState polls cond until it holds, or fails the test after
// clusterWaitLimit with cond's last word.
func waitState(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(clusterWaitLimit)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, clusterWaitLimit, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSameHashOf waits until every process answers /v1/hash with the
// same applied index and state hash.
func waitSameHashOf(t *testing.T, procs map[string]*process) *api.HashResult {
	t.Helper()
	var first *api.HashResult
	waitState(t, "the members to converge", func() (bool, string) {
		first = nil
		var last string
		for name, p := range procs {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			h, err := p.c.Hash(ctx)
			cancel()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", name, err)
			}
			last += fmt.Sprintf("%s at %d hash %s; ", name, h.AppliedIndex, h.StateHash)
			if first == nil {
				first = h
			} else if *h != *first {
				return false, last
			}
		}
		return true, last
	})
	return first
}
