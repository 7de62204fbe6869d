package main

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

// plannedJSON is planJSON as a script reads it.
type plannedJSON struct {
	DryRun      bool   `json:"dry_run"`
	NothingToDo string `json:"nothing_to_do"`
	Checkpoint  *struct {
		Path  string `json:"path"`
		Index uint64 `json:"index"`
	} `json:"checkpoint"`
	Folds           []string `json:"folds"`
	WALFirstIndex   uint64   `json:"wal_first_index"`
	DroppedSegments []string `json:"dropped_segments"`
	RemovedFiles    []string `json:"removed_files"`
}

// dryRunThenRun runs cmd with --dry-run --json, checks it changed no byte
// of data, then runs it for real with --json; it returns both outputs.
func dryRunThenRun(t *testing.T, data string, target []string, cmd ...string) (plannedJSON, string) {
	t.Helper()
	before := dirtest.Snapshot(t, data)
	stdout, stderr, code := run(t, append(append(cmd, target...), "--dry-run", "--json")...)
	mustCode(t, code, exitOK, stdout, stderr)
	dirtest.RequireUnchanged(t, data, before, strings.Join(cmd, " ")+" --dry-run")
	var p plannedJSON
	mustJSON(t, stdout, &p)
	if !p.DryRun {
		t.Errorf("%v --dry-run --json: %s", cmd, stdout)
	}
	stdout, stderr, code = run(t, append(append(cmd, target...), "--json")...)
	mustCode(t, code, exitOK, stdout, stderr)
	return p, stdout
}

// TestMaintenanceDryRun checks that --dry-run of checkpoint create, delta
// merge and wal compact changes no byte and says exactly what the real run
// then does, on --data and through a server.
func TestMaintenanceDryRun(t *testing.T) {
	for _, via := range []string{"data", "addr"} {
		t.Run(via, func(t *testing.T) {
			for _, cmd := range [][]string{{"checkpoint", "create"}, {"delta", "merge"}, {"wal", "compact"}} {
				sd := newSnapDir(t)
				target := []string{"--data", sd.data}
				if via == "addr" {
					st, err := store.Open(store.Options{Dir: sd.data})
					if err != nil {
						t.Fatal(err)
					}
					srv := httptest.NewServer(server.New(st, server.Options{}))
					t.Cleanup(func() { srv.Close(); st.Close() })
					target = []string{"--addr", srv.Listener.Addr().String()}
				}
				plan, out := dryRunThenRun(t, sd.data, target, cmd...)
				if plan.Checkpoint == nil {
					t.Fatalf("%v --dry-run plans no checkpoint", cmd)
				}
				if want := append([]string{sd.man.Base.Name}, sd.man.Deltas[0].Name, sd.man.Deltas[1].Name); !slices.Equal(plan.Folds, want) {
					t.Errorf("%v --dry-run folds %v, want %v", cmd, plan.Folds, want)
				}
				if cmd[1] == "compact" {
					var got client.CompactResult
					mustJSON(t, out, &got)
					if got.Checkpoint == nil || got.Checkpoint.Path != plan.Checkpoint.Path || got.WALFirstIndex != plan.WALFirstIndex ||
						!slices.Equal(got.DroppedSegments, plan.DroppedSegments) || !slices.Equal(got.RemovedFiles, plan.RemovedFiles) ||
						len(got.DroppedSegments) == 0 || len(got.RemovedFiles) != 3 {
						t.Errorf("wal compact --dry-run said\n%+v\nthe run did\n%s", plan, out)
					}
					continue
				}
				var got checkpointCreatedJSON
				mustJSON(t, out, &got)
				if got.CheckpointResult == nil || got.Path != plan.Checkpoint.Path || got.Index != plan.Checkpoint.Index ||
					got.Index+1 != plan.WALFirstIndex || len(plan.DroppedSegments)+len(plan.RemovedFiles) != 0 {
					t.Errorf("%v --dry-run said\n%+v\nthe run did\n%s", cmd, plan, out)
				}
			}
		})
	}
}

// TestMaintenanceDryRunText checks the text of a dry run, and of one with
// nothing to do.
func TestMaintenanceDryRunText(t *testing.T) {
	sd := newSnapDir(t)
	stdout, stderr, code := run(t, "--data", sd.data, "wal", "compact", "--dry-run")
	mustCode(t, code, exitOK, stdout, stderr)
	for _, want := range []string{"would write checkpoint " + sd.snap("0000000000000118.ckpt") + " at index 280",
		"would drop segment ", "would remove " + sd.snap(sd.man.Base.Name), "nothing was changed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("wal compact --dry-run does not say %q:\n%s", want, stdout)
		}
	}
	run(t, "--data", sd.data, "delta", "merge")
	before := dirtest.Snapshot(t, sd.data)
	stdout, stderr, code = run(t, "--data", sd.data, "delta", "merge", "-n")
	mustCode(t, code, exitOK, stdout, stderr)
	if stdout != "dry run: nothing to do: the manifest has no deltas to merge\n" {
		t.Errorf("delta merge --dry-run with no deltas: %q", stdout)
	}
	dirtest.RequireUnchanged(t, sd.data, before, "delta merge --dry-run")
}
