package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Drill is one recovery drill: a name scripts use, a one-line description
// for `kvtool drill --list`, and Run, which builds everything it needs under
// env.Dir, injects its fault, recovers and checks. Run never panics on what
// it finds and reports everything in the Result.
type Drill struct {
	Name        string
	Description string
	// Cluster is set for drills that need a running cluster of nodes.
	Cluster bool
	Run     func(ctx context.Context, env *Env) Result
}

// Env is what a drill runs with. A drill writes only under Dir and talks
// only to loopback addresses.
type Env struct {
	// Dir is the drill's own scratch directory, empty at the start. It is
	// removed afterwards unless the operator keeps it as evidence.
	Dir string
	// Seed makes the drill's random choices (fault points, amounts, kill
	// moments) reproducible, as far as the scheduler allows.
	Seed uint64
	// Duration is how long the drill drives its workload before the fault
	// (a kill happens at a random moment within it).
	Duration time.Duration
	// Exe is the kvtool executable drills that need real processes start
	// (`serve`). Empty: those drills cannot run.
	Exe string
	// Log receives the drill's evidence log: each step, what it found, and
	// the output of the commands it ran. Never nil inside Run.
	Log io.Writer
	// Progress, if set, is told the step a drill is at, for a progress line.
	Progress func(step string)
}

// Verdict is a drill's outcome.
type Verdict string

// The verdicts.
const (
	Pass  Verdict = "pass"  // every check held
	Fail  Verdict = "fail"  // a check failed: loss, divergence, or recovery that did not do its job
	Error Verdict = "error" // the drill could not run (setup failed); it proves nothing either way
	Skip  Verdict = "skip"  // the drill cannot run here, for a reason it gives (not a failure)
)

// Step is one timed step of a drill.
type Step struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds"`
}

// Result is what a drill found.
type Result struct {
	Drill   string  `json:"drill"`
	Verdict Verdict `json:"verdict"`
	// Acked counts the transactions acknowledged to the workload.
	Acked int `json:"acknowledged"`
	// Lost counts acknowledged transactions missing afterwards (or present
	// in part) that no repair report accounted for.
	Lost int `json:"lost"`
	// Recovery is the time from the fault to a recovered, serving store.
	Recovery        time.Duration `json:"-"`
	RecoverySeconds float64       `json:"time_to_recover_seconds"`
	// Points counts the fault points explored (crash images, flipped bytes),
	// for drills that explore more than one.
	Points int `json:"points_explored"`
	// Timings are a cluster drill's measured seconds: new_leader and
	// first_commit from the fault, catch_up from the node's return.
	Timings  map[string]float64 `json:"timings,omitempty"`
	Notes    []string           `json:"notes"`
	Failures []string           `json:"failures"` // the checks that failed, or why the drill could not run or was skipped
	Steps    []Step             `json:"steps"`
	Elapsed  float64            `json:"elapsed_seconds"`
	Dir      string             `json:"dir"` // the evidence, when kept
}

// All returns every drill, in the order `kvtool drill` runs them.
func All() []Drill {
	return []Drill{kill9, powerLoss, tornTail, midLogCorruption, corruptSnapshot, diskFull, followerLoss, leaderLoss, partition, hotJoin, replaceNode, corruptSnapshotCluster}
}

// Lookup returns the drill called name.
func Lookup(name string) (Drill, bool) {
	for _, d := range All() {
		if d.Name == name {
			return d, true
		}
	}
	return Drill{}, false
}

// Names lists the drills' names.
func Names() []string {
	var names []string
	for _, d := range All() {
		names = append(names, d.Name)
	}
	return names
}

// Options configure Run.
type Options struct {
	Seed     uint64
	Duration time.Duration
	Exe      string
	// Keep, if set, is the directory the drills' scratch directories are
	// made in (Keep/<drill>) and left as evidence; otherwise they go in a
	// temporary directory that is removed.
	Keep string
	// Progress, if set, is called with the drill and the step it is at.
	Progress func(drill, step string)
	// Done, if set, is called with each result as soon as it is known.
	Done func(Result)
}

// ErrKeepNotEmpty is returned (wrapped) by Run when a drill's directory
// under Options.Keep already holds files: evidence is never overwritten.
var ErrKeepNotEmpty = errors.New("kvtool/drill: the --keep directory already holds this drill's evidence")

// Run runs drills one after another and returns their results. Each gets a
// scratch directory and an evidence log (drill.log in it). The error is for
// what stops all drills (the scratch directory cannot be made); a drill that
// cannot run is a Result with the Error verdict.
func Run(ctx context.Context, drills []Drill, opts Options) ([]Result, error) {
	root, cleanup, err := scratchRoot(opts.Keep)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var results []Result
	for i, d := range drills {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		seed := opts.Seed + uint64(i)*0x9e3779b97f4a7c15
		r := runOne(ctx, d, filepath.Join(root, d.Name), seed, opts)
		if opts.Keep != "" {
			r.Dir = filepath.Join(root, d.Name)
		}
		results = append(results, r)
		if opts.Done != nil {
			opts.Done(r)
		}
	}
	return results, ctx.Err()
}

// scratchRoot returns the absolute directory the drills' directories go
// in (servers run with their own working directory) and how to clean up.
func scratchRoot(keep string) (string, func(), error) {
	if keep != "" {
		abs, err := filepath.Abs(keep)
		if err != nil {
			return "", nil, fmt.Errorf("kvtool/drill: --keep directory %s: %w", keep, err)
		}
		keep = abs
		if err := os.MkdirAll(keep, 0o755); err != nil {
			return "", nil, fmt.Errorf("kvtool/drill: create --keep directory %s: %w", keep, err)
		}
		return keep, func() {}, nil
	}
	root, err := os.MkdirTemp("", "kvtool-drill-")
	if err == nil {
		root, err = filepath.Abs(root)
	}
	if err != nil {
		return "", nil, fmt.Errorf("kvtool/drill: create a scratch directory: %w", err)
	}
	return root, func() { os.RemoveAll(root) }, nil
}

// runOne runs drill d in dir and fills in what every result carries.
func runOne(ctx context.Context, d Drill, dir string, seed uint64, opts Options) Result {
	start := time.Now()
	r := func() Result {
		if err := makeEmptyDir(dir); err != nil {
			return Result{Verdict: Error, Failures: []string{err.Error()}}
		}
		logf, err := os.Create(filepath.Join(dir, "drill.log"))
		if err != nil {
			return Result{Verdict: Error, Failures: []string{fmt.Sprintf("create the evidence log: %v", err)}}
		}
		defer logf.Close()
		env := &Env{Dir: dir, Seed: seed, Duration: opts.Duration, Exe: opts.Exe, Log: logf}
		if opts.Progress != nil {
			env.Progress = func(step string) { opts.Progress(d.Name, step) }
		}
		fmt.Fprintf(logf, "drill %s, seed %d, duration %v\n", d.Name, seed, opts.Duration)
		res := d.Run(ctx, env)
		if ctx.Err() != nil && res.Verdict != Pass {
			// What a drill cut short found is no verdict on the store.
			res.Verdict = Error
			res.Failures = append(res.Failures, fmt.Sprintf("interrupted (%v) before the drill could finish", ctx.Err()))
		}
		fmt.Fprintf(logf, "verdict %s: %s\n", res.Verdict, strings.Join(append(res.Failures, res.Notes...), "; "))
		return res
	}()
	r.Drill = d.Name
	r.Elapsed = time.Since(start).Seconds()
	r.RecoverySeconds = r.Recovery.Seconds()
	for i := range r.Steps {
		r.Steps[i].Seconds = r.Steps[i].Duration.Seconds()
	}
	if r.Notes == nil {
		r.Notes = []string{}
	}
	if r.Failures == nil {
		r.Failures = []string{}
	}
	if r.Steps == nil {
		r.Steps = []Step{}
	}
	return r
}

// makeEmptyDir creates dir, refusing one that already holds files.
func makeEmptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: %s is not empty (choose another --keep directory, or empty it)", ErrKeepNotEmpty, dir)
	}
	return nil
}
