package drill

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/testfault"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// testEnv is an Env for running one drill in a test, its log in a buffer
// that is printed if the test fails.
func testEnv(t *testing.T, d time.Duration) *Env {
	t.Helper()
	var log bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("drill log:\n%s", log.String())
		}
	})
	return &Env{Dir: t.TempDir(), Seed: 1, Duration: d, Log: &log}
}

// TestTornTailCatchesPlantedFault runs torn-tail on a WAL that
// acknowledges each batch before writing it: the torn write holds
// acknowledged transfers, and the drill must report them lost.
func TestTornTailCatchesPlantedFault(t *testing.T) {
	testfault.WALAckBeforeWrite.Store(true)
	defer testfault.WALAckBeforeWrite.Store(false)
	// The tear lands at a random write, which may be a marker record rather
	// than the batch the fault holds back: up to four seeds, one of which
	// must report the loss.
	var r Result
	for seed := uint64(1); seed <= 4; seed++ {
		env := testEnv(t, 500*time.Millisecond)
		env.Seed = seed
		if r = runTornTail(context.Background(), env); r.Verdict == Fail && r.Lost > 0 {
			t.Logf("%d of %d lost: %v", r.Lost, r.Acked, r.Failures)
			return
		}
		t.Logf("seed %d: verdict %s, %d lost (%v); trying another seed", seed, r.Verdict, r.Lost, r.Failures)
	}
	t.Fatalf("verdict %s, %d lost; want a failure with loss: %v", r.Verdict, r.Lost, r.Failures)
}

// TestTornTailPasses runs torn-tail on the real WAL.
func TestTornTailPasses(t *testing.T) {
	r := runTornTail(context.Background(), testEnv(t, 500*time.Millisecond))
	if r.Verdict != Pass || r.Acked == 0 {
		t.Fatalf("verdict %s, %d acknowledged: %v", r.Verdict, r.Acked, r.Failures)
	}
}

// TestRepairReportCheck damages a real log, repairs it with force, and
// checks that checkRepairReport accepts the true report and rejects every
// doctored one: each way a report could misstate what left the log.
func TestRepairReportCheck(t *testing.T) {
	env := testEnv(t, 300*time.Millisecond)
	data := filepath.Join(env.Dir, "data")
	walDir := filepath.Join(data, "wal")
	bank := NewBank(serverAccounts, serverInitial, 0)
	if err := loadRotating(context.Background(), data, bank, env); err != nil {
		t.Fatal(err)
	}
	before, err := logIndexes(walDir)
	if err != nil {
		t.Fatal(err)
	}
	// The second record of the oldest segment: whole records follow it in
	// its segment and in later ones, so every part of the report counts.
	sealed, err := sealedSegments(walDir)
	if err != nil || len(sealed) < 2 {
		t.Fatalf("want two sealed segments with records: %v, %v", sealed, err)
	}
	recs, err := segmentRecords(sealed[0].Path)
	if err != nil || len(recs) < 2 {
		t.Fatalf("want two records in %s: %v", sealed[0].Path, err)
	}
	dmg, err := damageRecord(sealed[0].Path, recs[1], rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := segment.Repair(vfs.Default, walDir, segment.RepairOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	after, err := logIndexes(walDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRepairReport(res, dmg, before, after); err != nil {
		t.Fatalf("the true report is rejected: %v", err)
	}
	last := -1 // the last cut that removed records (the newest segment may have none)
	for i, c := range res.Cuts {
		if c.FirstLostIndex != 0 {
			last = i
		}
	}
	if last < 1 {
		t.Fatalf("the repair should cut records from the damaged segment and from later ones: %+v", res.Cuts)
	}
	doctor := func(f func(r *segment.RepairResult)) *segment.RepairResult {
		r := *res
		r.Cuts = append([]segment.Cut(nil), res.Cuts...)
		f(&r)
		return &r
	}
	for name, bad := range map[string]*segment.RepairResult{
		"log said to end later":            doctor(func(r *segment.RepairResult) { r.LastIndex++ }),
		"log said to end earlier":          doctor(func(r *segment.RepairResult) { r.LastIndex-- }),
		"a cut left out":                   doctor(func(r *segment.RepairResult) { r.Cuts = append(r.Cuts[:last], r.Cuts[last+1:]...) }),
		"a cut short by one":               doctor(func(r *segment.RepairResult) { r.Cuts[last].LastLostIndex-- }),
		"a cut long by one":                doctor(func(r *segment.RepairResult) { r.Cuts[last].LastLostIndex++ }),
		"a cut reaching before the damage": doctor(func(r *segment.RepairResult) { r.Cuts[0].FirstLostIndex = dmg.rec.index - 1 }),
		"the wrong first cut":              doctor(func(r *segment.RepairResult) { r.Cuts[0].Offset++ }),
	} {
		if err := checkRepairReport(bad, dmg, before, after); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// And what is missing is checked, not only the report: a log that
	// lost one more index than reported is caught.
	if err := checkRepairReport(res, dmg, before, after[:len(after)-1]); err == nil {
		t.Errorf("an index missing beyond the report is accepted")
	}
}

// TestCheckFlipFailsUndamaged runs the corrupt-snapshot check on a
// directory whose bytes are all intact: the store opens, so the check must
// fail (it would pass a recovery that ignored the damage).
//
// The failures that check is meant to record go to a log of their own,
// shown only if it does not record them: in the drill log, which the test
// prints when it fails for any other reason, they read like a real
// "replay rebuilt a state anyway" from the damaged base.
func TestCheckFlipFailsUndamaged(t *testing.T) {
	env := testEnv(t, 300*time.Millisecond)
	data := filepath.Join(env.Dir, "data")
	bank := NewBank(serverAccounts, serverInitial, 0)
	good, err := loadWithSnapshots(context.Background(), data, bank, env)
	if err != nil {
		t.Fatal(err)
	}
	man, err := manifest.Load(vfs.Default, data)
	if err != nil || man.Base == nil {
		t.Fatalf("no base checkpoint: %v", err)
	}
	base := filepath.Join(data, format.SnapDir, man.Base.Name)
	r, expected := expectedFailures(env)
	if checkFlip(r, data, base, 10, good) {
		t.Fatalf("checkFlip passes an undamaged directory; its log:\n%s", expected)
	}
	if !strings.Contains(strings.Join(r.res.Failures, " "), "opened anyway") {
		t.Errorf("failures %v do not say the store opened", r.res.Failures)
	}
	// With the byte really flipped, the same check passes.
	if err := flipByte(base, 10, 0xff); err != nil {
		t.Fatal(err)
	}
	if r := newRun(env); !checkFlip(r, data, base, 10, good) {
		t.Errorf("a flipped byte in the base is not caught: %v", r.res.Failures)
	}
}

// expectedFailures returns a run for a check that is meant to fail, with a
// log of its own: the drill log a failed test prints holds only what went
// wrong.
func expectedFailures(env *Env) (*run, *bytes.Buffer) {
	var log bytes.Buffer
	own := *env
	own.Log = &log
	return newRun(&own), &log
}

// TestRunKeepsEvidence checks Run's scratch handling: with Keep the drill's
// directory and log stay, and a second run into the same directory is
// refused rather than overwriting the evidence.
func TestRunKeepsEvidence(t *testing.T) {
	keep := t.TempDir()
	d := Drill{Name: "noop", Run: func(ctx context.Context, env *Env) Result {
		os.WriteFile(filepath.Join(env.Dir, "evidence"), []byte("x"), 0o644)
		return newRun(env).result()
	}}
	res, err := Run(context.Background(), []Drill{d}, Options{Keep: keep, Duration: time.Second})
	if err != nil || len(res) != 1 || res[0].Verdict != Pass {
		t.Fatalf("%v %+v", err, res)
	}
	for _, f := range []string{"evidence", "drill.log"} {
		if _, err := os.Stat(filepath.Join(keep, "noop", f)); err != nil {
			t.Errorf("kept %s: %v", f, err)
		}
	}
	res, _ = Run(context.Background(), []Drill{d}, Options{Keep: keep, Duration: time.Second})
	if res[0].Verdict != Error {
		t.Errorf("a second run into kept evidence: verdict %s, want error", res[0].Verdict)
	}
}

// TestRunInterrupted checks that a drill cut short by the operator is not
// reported as having found loss: its checks ran on a half-done drill.
func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	d := Drill{Name: "cut-short", Run: func(ctx context.Context, env *Env) Result {
		cancel()
		r := newRun(env)
		r.fail("the server does not start: %v", ctx.Err())
		return r.result()
	}}
	res, err := Run(ctx, []Drill{d}, Options{Duration: time.Second})
	if err == nil || len(res) != 1 || res[0].Verdict != Error {
		t.Fatalf("err %v, results %+v; want the interruption and an error verdict", err, res)
	}
}

// TestRunKeepRelative checks that a relative --keep directory is made
// absolute: the servers drills start run in a working directory of their
// own, so a relative path would point elsewhere for them.
func TestRunKeepRelative(t *testing.T) {
	t.Chdir(t.TempDir())
	var got string
	d := Drill{Name: "where", Run: func(ctx context.Context, env *Env) Result {
		got = env.Dir
		return newRun(env).result()
	}}
	res, err := Run(context.Background(), []Drill{d}, Options{Keep: "evidence", Duration: time.Second})
	if err != nil || !filepath.IsAbs(got) || !filepath.IsAbs(res[0].Dir) {
		t.Fatalf("err %v, drill directory %q, result directory %q; want absolute ones", err, got, res[0].Dir)
	}
}
