package main

import (
	"fmt"
	"testing"

	"github.com/kvtool/kvtool/drill"
	"github.com/kvtool/kvtool/internal/testfault"
)

// clusterDrills are the drills on a 3-node cluster of real processes.
var clusterDrills = []string{"follower-loss", "leader-loss", "partition"}

// TestDrillCluster runs each cluster drill once with the short CI load:
// each passes, acknowledged something, lost nothing, and timed the new
// leader, the first commit after the fault and the node's catch-up.
func TestDrillCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three real cluster nodes per drill; skipped with -short")
	}
	results, code, stderr := drillRun(t, clusterDrills...)
	for _, name := range clusterDrills {
		r, ok := results[name]
		switch {
		case !ok:
			t.Errorf("%s: no result\nstderr:\n%s", name, stderr)
		case r.Verdict != drill.Pass || r.Lost != 0 || r.Acked == 0:
			t.Errorf("%s: verdict %s, %d acknowledged, %d lost: %v (evidence: %s)", name, r.Verdict, r.Acked, r.Lost, r.Failures, r.Dir)
		default:
			for _, k := range []string{"new_leader", "first_commit", "catch_up"} {
				if _, ok := r.Timings[k]; !ok {
					t.Errorf("%s: no %s timing in %v", name, k, r.Timings)
				}
			}
			t.Logf("%s: %d acknowledged, timings %v; %v", name, r.Acked, r.Timings, r.Notes)
		}
	}
	if code != exitOK {
		t.Errorf("exit code %d, want 0\nstderr:\n%s", code, stderr)
	}
}

// TestDrillClusterCatchesPlantedFault plants members that acknowledge a
// write once it is in their own log, before any quorum: the partition
// drill, whose cut-off leader keeps taking writes, must report loss and
// exit 3.
func TestDrillClusterCatchesPlantedFault(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three real cluster nodes; skipped with -short")
	}
	t.Setenv("KVTOOL_TEST_FAULT", testfault.NameClusterAckBeforeQuorum)
	var r drill.Result
	var code int
	var stderr string
	for seed := 1; seed <= 3; seed++ {
		var results map[string]drill.Result
		results, code, stderr = drillRun(t, "--seed", fmt.Sprint(seed), "partition")
		if r = results["partition"]; r.Verdict == drill.Fail && r.Lost > 0 {
			break
		}
		t.Logf("seed %d: verdict %q, %d lost (%v); trying another seed", seed, r.Verdict, r.Lost, r.Failures)
	}
	if r.Verdict != drill.Fail || r.Lost == 0 {
		t.Fatalf("partition with acknowledgements before the quorum: verdict %q, %d lost; want a failure with loss (%v)", r.Verdict, r.Lost, r.Failures)
	}
	t.Logf("partition: %d of %d acknowledged lost: %v", r.Lost, r.Acked, r.Failures)
	if code != exitDamage {
		t.Errorf("exit code %d, want %d\nstderr:\n%s", code, exitDamage, stderr)
	}
}
