package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/drill"
	"github.com/kvtool/kvtool/internal/testfault"
)

// standInForKvtool lets this test binary stand in for kvtool, called first
// thing in TestMain: a drill starts "the kvtool binary" with
// os.Executable(), which in a test is this binary. With
// KVTOOL_TEST_AS_KVTOOL=1 in its environment it runs kvtool's main instead
// of the tests (and never returns), after planting the fault
// KVTOOL_TEST_FAULT names (see internal/testfault; the real kvtool never
// reads either variable).
func standInForKvtool() {
	if os.Getenv("KVTOOL_TEST_AS_KVTOOL") != "1" {
		return
	}
	if err := testfault.Plant(os.Getenv("KVTOOL_TEST_FAULT")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitUsage)
	}
	main()
	os.Exit(exitOK) // main exits; this is for the reader
}

// drillDuration is the load each drill drives in CI.
const drillDuration = "1s"

// drillRun runs `kvtool drill --json` in-process with this binary standing
// in for kvtool, and returns the results by drill and the exit code.
func drillRun(t *testing.T, args ...string) (map[string]drill.Result, int, string) {
	t.Helper()
	t.Setenv("KVTOOL_TEST_AS_KVTOOL", "1")
	stdout, stderr, code := kvRun(t, "", append([]string{"drill", "--json", "--duration", drillDuration, "--keep", t.TempDir()}, args...)...)
	results := map[string]drill.Result{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if line == "" {
			continue
		}
		var r drill.Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("drill --json printed %q: %v\nstderr:\n%s", line, err, stderr)
		}
		results[r.Drill] = r
	}
	return results, code, stderr
}

// TestDrillSingleNode runs the single-node drills as CI does: they pass,
// and each acknowledged something and lost nothing.
func TestDrillSingleNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real servers and crashes stores; skipped with -short")
	}
	names := []string{"kill-9", "power-loss", "torn-tail", "mid-log-corruption", "corrupt-snapshot"}
	results, code, stderr := drillRun(t, names...)
	for _, name := range names {
		r, ok := results[name]
		switch {
		case !ok:
			t.Errorf("%s: no result\nstderr:\n%s", name, stderr)
		case r.Verdict != drill.Pass || r.Lost != 0 || r.Acked == 0:
			t.Errorf("%s: verdict %s, %d acknowledged, %d lost: %v (evidence: %s)", name, r.Verdict, r.Acked, r.Lost, r.Failures, r.Dir)
		default:
			t.Logf("%s: %d acknowledged, recovered in %.3fs; %v", name, r.Acked, r.RecoverySeconds, r.Notes)
		}
	}
	if code != exitOK {
		t.Errorf("exit code %d, want 0\nstderr:\n%s", code, stderr)
	}
}

// TestDrillCatchesPlantedFault plants a WAL that acknowledges a batch
// before writing it, in this process (power-loss) and in the servers the
// kill-9 drill starts: both drills must report loss and exit 3.
func TestDrillCatchesPlantedFault(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real servers and crashes stores; skipped with -short")
	}
	t.Setenv("KVTOOL_TEST_FAULT", testfault.NameWALAckBeforeWrite)
	testfault.WALAckBeforeWrite.Store(true)
	defer testfault.WALAckBeforeWrite.Store(false)
	// Each drill must catch the fault. A kill lands at a random moment,
	// which may, rarely, miss the one batch the fault holds back, so a
	// drill gets up to four seeds; a drill that never reports the loss fails.
	for _, name := range []string{"kill-9", "power-loss"} {
		var r drill.Result
		var code int
		var stderr string
		for seed := 1; seed <= 4; seed++ {
			var results map[string]drill.Result
			results, code, stderr = drillRun(t, "--seed", fmt.Sprint(seed), name)
			if r = results[name]; r.Verdict == drill.Fail && r.Lost > 0 {
				break
			}
			t.Logf("%s seed %d: verdict %q, %d lost (%v); trying another seed", name, seed, r.Verdict, r.Lost, r.Failures)
		}
		if r.Verdict != drill.Fail || r.Lost == 0 {
			t.Errorf("%s with acknowledgements before the write: verdict %q, %d lost; want a failure with loss (%v)", name, r.Verdict, r.Lost, r.Failures)
			continue
		}
		t.Logf("%s: %d of %d acknowledged lost: %v", name, r.Lost, r.Acked, r.Failures)
		if code != exitDamage {
			t.Errorf("%s: exit code %d, want %d\nstderr:\n%s", name, code, exitDamage, stderr)
		}
	}
}

// TestDrillDiskFull runs the disk-full drill where a tmpfs can be mounted
// (it skips itself, saying why, elsewhere).
func TestDrillDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs and starts real servers; skipped with -short")
	}
	results, code, stderr := drillRun(t, "disk-full")
	r, ok := results["disk-full"]
	if !ok {
		t.Fatalf("no result; exit %d\nstderr:\n%s", code, stderr)
	}
	switch r.Verdict {
	case drill.Skip:
		t.Skipf("disk-full skipped: %v", r.Failures)
	case drill.Pass:
		if code != exitOK {
			t.Errorf("exit code %d, want 0", code)
		}
		return
	}
	t.Fatalf("disk-full: verdict %s, exit %d, %d lost: %v\nstderr:\n%s", r.Verdict, code, r.Lost, r.Failures, stderr)
}

// TestDrillUsage checks the command's contract for bad input and --list.
func TestDrillUsage(t *testing.T) {
	_, stderr, code := kvRun(t, "", "drill", "no-such-drill")
	if code != exitUsage || !strings.Contains(stderr, "kill-9") {
		t.Errorf("unknown drill: exit %d, stderr %q; want 2 naming the drills", code, stderr)
	}
	_, _, code = kvRun(t, "", "drill", "--duration", "1ms", "kill-9")
	if code != exitUsage {
		t.Errorf("--duration 1ms: exit %d, want 2", code)
	}
	stdout, _, code := kvRun(t, "", "drill", "--list", "--json")
	if code != exitOK {
		t.Fatalf("--list: exit %d", code)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var d struct{ Name, Description string }
		if err := json.Unmarshal([]byte(line), &d); err != nil || d.Name == "" || d.Description == "" {
			t.Errorf("--list --json line %q: %v", line, err)
		}
		n++
	}
	if n != len(drill.All()) {
		t.Errorf("--list printed %d drills, want %d", n, len(drill.All()))
	}
}
