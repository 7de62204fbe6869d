package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/drill"
)

func drillCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "drill",
		Usage:     "run recovery drills: inject a fault into a real store, recover, prove nothing was lost",
		ArgsUsage: "[DRILL...]",
		Description: `Runs the named drills, or all of them, one after another. Each builds a real
store in a scratch directory of its own (never --data) and serves it on
127.0.0.1 only, drives a bank workload that records every acknowledged
transaction, injects its fault, recovers the way an operator would with
kvtool's own code, and checks: every acknowledged transaction present exactly
once, balances conserved, verify clean, the live state hash equal to a replay.
The cluster drills (follower-loss, leader-loss, partition) run three serve
--node processes whose peer links go through proxies the drill cuts and
heals, time the new leader, the first commit after the fault and the node's
catch-up (--json: "timings"), and check every node holds the same state hash
at the same applied index. hot-join and replace-node change the membership
under load the way an operator would (serve --join-cluster, kvtool cluster
remove) and end with the same checks over every member.

It prints a table (drill, verdict, acknowledged transactions, lost, time to
recover, notes) and a summary; with --json one JSON object per drill (JSON
lines). A progress line per drill is drawn on standard error when it is a
terminal. --keep DIR leaves each drill's directories and logs in DIR/<drill>
(drill.log says what it did, step by step). --seed makes a run's random
choices repeatable; the seed used is printed.

Exit status: 0 when every drill passed (or was skipped, saying why), 3 when
one found loss, divergence or a recovery that failed its job, 1 when a drill
could not run.

Examples:
  kvtool drill --list
  kvtool drill
  kvtool drill kill-9 power-loss --duration 10s --keep /tmp/evidence
  kvtool drill --json --seed 42 torn-tail`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "list", Usage: "list the drills, one line each, and exit", DisableDefaultText: true},
			&cli.StringFlag{Name: "keep", Usage: "leave each drill's directories and logs in `DIR`/<drill> as evidence"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed `N` for the drills' random choices (default: from the clock)"},
			&cli.DurationFlag{Name: "duration", Value: 5 * time.Second, Usage: "drive each drill's load for `D`"},
		},
		Action: act(e, spec{max: -1}, func(c *call) error {
			if c.Bool("list") {
				return listDrills(newPrinter(c.Context))
			}
			drills, err := drillsNamed(c.Context)
			if err != nil {
				return err
			}
			opts, err := drillOptionsOf(c.Context)
			if err != nil {
				return err
			}
			return runDrills(c.Context, drills, opts)
		}),
	}
}

func listDrills(p *printer) error {
	if p.json {
		for _, d := range drill.All() {
			if err := p.JSONLine(struct {
				Name        string `json:"name"`
				Description string `json:"description"`
				Cluster     bool   `json:"cluster"`
			}{d.Name, d.Description, d.Cluster}); err != nil {
				return err
			}
		}
		return nil
	}
	t := p.Table("DRILL", "DESCRIPTION")
	for _, d := range drill.All() {
		t.Row(d.Name, d.Description)
	}
	return t.Flush()
}

// drillsNamed returns the drills the arguments name, or all of them.
func drillsNamed(cCtx *cli.Context) ([]drill.Drill, error) {
	if cCtx.NArg() == 0 {
		return drill.All(), nil
	}
	var ds []drill.Drill
	for _, name := range cCtx.Args().Slice() {
		d, ok := drill.Lookup(name)
		if !ok {
			return nil, usageErrorf(cCtx, "no drill %q; the drills are: %s", name, strings.Join(drill.Names(), ", "))
		}
		ds = append(ds, d)
	}
	return ds, nil
}

func drillOptionsOf(cCtx *cli.Context) (drill.Options, error) {
	opts := drill.Options{Seed: cCtx.Uint64("seed"), Duration: cCtx.Duration("duration"), Keep: cCtx.String("keep")}
	if !cCtx.IsSet("seed") {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	if opts.Duration < 100*time.Millisecond || opts.Duration > time.Hour {
		return opts, usageErrorf(cCtx, "--duration must be between 100ms and 1h")
	}
	exe, err := os.Executable()
	if err != nil {
		return opts, failed(fmt.Errorf("find the kvtool executable the drills start: %w", err), "")
	}
	opts.Exe = exe
	return opts, nil
}

func runDrills(cCtx *cli.Context, drills []drill.Drill, opts drill.Options) error {
	p := newPrinter(cCtx)
	line := newProgressLine(cCtx)
	for i, d := range drills {
		line.names[d.Name] = fmt.Sprintf("[%d/%d] %s", i+1, len(drills), d.Name)
	}
	opts.Progress = line.show
	opts.Done = func(r drill.Result) {
		line.done(r)
		if p.json {
			p.JSONLine(r)
		}
	}
	start := time.Now()
	results, err := drill.Run(cCtx.Context, drills, opts)
	line.clear()
	if err != nil && len(results) < len(drills) {
		if errors.Is(err, cCtx.Context.Err()) {
			return err
		}
		return failed(err, "")
	}
	if !p.json {
		if err := printDrillTable(p, results); err != nil {
			return err
		}
	}
	return drillVerdict(p, results, opts, time.Since(start))
}

func printDrillTable(p *printer, results []drill.Result) error {
	t := p.Table("DRILL", "VERDICT", "ACKED", "LOST", "RECOVERY", "NOTES")
	for _, r := range results {
		rec := "-"
		if r.Recovery > 0 {
			rec = r.Recovery.Round(time.Millisecond).String()
		}
		notes := append(append([]string{}, r.Failures...), r.Notes...)
		first := ""
		if len(notes) > 0 {
			first = shorten(notes[0], 100)
		}
		t.Row(r.Drill, r.Verdict, r.Acked, r.Lost, rec, first)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		for _, f := range r.Failures {
			p.Notef("%s: %s: %s", r.Drill, strings.ToUpper(string(r.Verdict)), f)
		}
		if r.Dir != "" {
			p.Notef("%s: evidence in %s", r.Drill, r.Dir)
		}
	}
	return nil
}

// drillVerdict prints the summary and turns the results into the exit
// status: 3 for any failed drill, else 1 for any that could not run.
func drillVerdict(p *printer, results []drill.Result, opts drill.Options, took time.Duration) error {
	count := map[drill.Verdict][]string{}
	for _, r := range results {
		count[r.Verdict] = append(count[r.Verdict], r.Drill)
	}
	p.Notef("%d passed, %d failed, %d could not run, %d skipped (seed %d, %v)",
		len(count[drill.Pass]), len(count[drill.Fail]), len(count[drill.Error]), len(count[drill.Skip]),
		opts.Seed, took.Round(100*time.Millisecond))
	again := fmt.Sprintf("rerun with --seed %d --keep DIR to keep the evidence", opts.Seed)
	switch {
	case len(count[drill.Fail]) > 0:
		return damaged(fmt.Errorf("drill: %s found loss, divergence or a failed recovery", strings.Join(count[drill.Fail], ", ")), again)
	case len(count[drill.Error]) > 0:
		return failed(fmt.Errorf("drill: %s could not run", strings.Join(count[drill.Error], ", ")), again)
	}
	return nil
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// progressLine draws one line on standard error, when it is a terminal,
// saying which drill runs and at which step.
type progressLine struct {
	w     io.Writer // nil: disabled
	names map[string]string
}

func newProgressLine(cCtx *cli.Context) *progressLine {
	l := &progressLine{names: map[string]string{}}
	if g := globalsOf(cCtx); !g.JSON && !g.Quiet && isTerminal(cCtx.App.ErrWriter) {
		l.w = cCtx.App.ErrWriter
	}
	return l
}

func (l *progressLine) show(name, step string) {
	if l.w != nil {
		fmt.Fprintf(l.w, "\r\033[K%s: %s", l.names[name], shorten(step, 60))
	}
}

// done replaces the drill's line with its verdict, which stays.
func (l *progressLine) done(r drill.Result) {
	if l.w != nil {
		fmt.Fprintf(l.w, "\r\033[K%s: %s (%.1fs)\n", l.names[r.Drill], r.Verdict, r.Elapsed)
	}
}

func (l *progressLine) clear() {
	if l.w != nil {
		fmt.Fprint(l.w, "\r\033[K")
	}
}
