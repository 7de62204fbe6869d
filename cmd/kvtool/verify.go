package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/vfs"
)

// verifyCommand is `kvtool verify`: every file of the data directory.
func verifyCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check every file of the data directory; exit 3 on any fault",
		Description: `Reads every file the data directory's recovery depends on and checks
everything that can be checked:

  MANIFEST        decodes; every file it names exists and is the file it
                  recorded (size, index range, whole-file checksum)
  base checkpoint every block checksum, the whole-file checksum, the state
                  hash recomputed from the blocks against the footer
  deltas          the same, and the chain: each delta starts where the one
                  before ends and names it as its parent
  WAL segments    every record checksum, contiguous indexes, the header
                  chain, a torn tail; the store ID of every segment; and that
                  the segments cover the manifest's WAL first index through
                  the end of the log
  raft/ (a cluster member's directory)
                  STATE decodes (term, vote, snapshot, membership); the raft
                  log's segments as the WAL's, every entry a raft entry; the
                  log continues STATE's snapshot and reaches the index the
                  store applied (an install a crash interrupted: the staged
                  snapshot it finishes from is there, sound, at STATE's
                  index); JOIN and REMOVED decode (REMOVED is a note)

It prints every fault (file, byte offset, kind, reason; offset "-" when the
fault is about the whole file), then a count, and exits 3 if it found any,
0 if none. Checkpoints and deltas the manifest does not name, quarantine and
temporary files are listed as notes: recovery never trusts them.

Fault kinds: corruption, missing, mismatch, chain, foreign, coverage, and
the WAL's gap, chain-break, torn-tail and garbage. File kinds: manifest,
checkpoint, delta, segment, wal, truncate-intent, raft-state, raft-segment,
raft-marker, raft-log (the raft log as a whole). A torn tail of the raft
log is cut by the member when it starts (it was never acknowledged).

Reads only; never creates, locks or changes a file, so it is safe beside a
running server (which may then show a record being written as a torn tail;
run it again to confirm).

Examples:
  kvtool verify
  kvtool verify --json | jq -r '.files[].problems[] | "\(.path):\(.offset) \(.reason)"'
  kvtool verify --quiet || echo "data directory damaged"`,
		Flags:  []cli.Flag{progressFlag()},
		Action: act(e, spec{scope: readDir, pendingOK: true}, func(c *call) error { return verifyDir(c.Context, c.fs, c.data()) }),
	}
}

func verifyDir(cCtx *cli.Context, fsys vfs.FS, data string) error {
	pr := startProgress(cCtx, "verify", 0)
	rep, err := cluster.VerifyMember(fsys, data, datadir.VerifyOptions{Progress: pr.Update})
	pr.Done()
	if err != nil {
		return dirError(err, data)
	}
	return finishReport(cCtx, fsys, "verify", data, rep)
}

// finishReport prints a verification report and returns the exit error for
// its faults (exit 3), or nil.
func finishReport(cCtx *cli.Context, fsys vfs.FS, what, data string, rep *datadir.Report) error {
	return finishWith(cCtx, fsys, what, data, rep, func(p *printer) error { return printReport(p, data, rep) })
}

// finishWith is finishReport printing with print.
func finishWith(cCtx *cli.Context, fsys vfs.FS, what, data string, rep *datadir.Report, print func(*printer) error) error {
	if err := print(newPrinter(cCtx)); err != nil {
		return err
	}
	if rep.OK() {
		return nil
	}
	_, err := fsys.Stat(filepath.Join(data, format.RaftDir))
	return damaged(fmt.Errorf("%s: %s in %s", what, plural(rep.Faults, "fault"), data), faultHint(data, rep, err == nil))
}

// reportJSON is the document verify (and checkpoint verify, delta verify)
// print with --json.
type reportJSON struct {
	DataDir       string               `json:"data_dir"`
	OK            bool                 `json:"ok"`
	Faults        int                  `json:"faults"`
	AppliedIndex  uint64               `json:"applied_index"`
	SnapshotIndex uint64               `json:"snapshot_index"`
	WALFirstIndex uint64               `json:"wal_first_index"`
	WALLastIndex  uint64               `json:"wal_last_index"`
	Files         []datadir.FileReport `json:"files"`
	Notes         []string             `json:"notes"`
	// Raft is a cluster member's raft log as its start would read it.
	Raft *datadir.RaftInfo `json:"raft,omitempty"`
}

// snapReportJSON is the document checkpoint verify and delta verify print
// with --json. They read snapshot files only, never the WAL, so it has no
// WAL indexes; its applied index is that of the state the files verified
// hold (the checkpoint's, or the end of the delta chain), absent when
// unknown.
type snapReportJSON struct {
	DataDir      string               `json:"data_dir,omitempty"`
	Path         string               `json:"path,omitempty"` // the FILE verified, if one was given
	OK           bool                 `json:"ok"`
	Faults       int                  `json:"faults"`
	AppliedIndex *uint64              `json:"applied_index,omitempty"`
	StateHash    string               `json:"state_hash,omitempty"`
	Files        []datadir.FileReport `json:"files"`
	Notes        []string             `json:"notes"`
}

// printSnapReport prints a report of checkpoint verify or delta verify:
// as printReport in text, and with --json as a snapReportJSON.
func printSnapReport(p *printer, data, path string, rep *datadir.Report, applied *uint64, stateHash string) error {
	if !p.json {
		return printReport(p, data, rep)
	}
	out := snapReportJSON{DataDir: data, Path: path, OK: rep.OK(), Faults: rep.Faults, AppliedIndex: applied,
		StateHash: stateHash, Files: rep.Files, Notes: rep.Notes}
	if path != "" {
		out.DataDir = ""
	}
	if out.Files == nil {
		out.Files = []datadir.FileReport{}
	}
	if out.Notes == nil {
		out.Notes = []string{}
	}
	return p.JSON(out)
}

func printReport(p *printer, data string, rep *datadir.Report) error {
	if p.json {
		out := reportJSON{DataDir: data, OK: rep.OK(), Faults: rep.Faults, AppliedIndex: rep.AppliedIndex,
			SnapshotIndex: rep.SnapshotIndex, WALFirstIndex: rep.WALFirstIndex, WALLastIndex: rep.WALLastIndex,
			Files: rep.Files, Notes: rep.Notes, Raft: rep.Raft}
		if out.Files == nil {
			out.Files = []datadir.FileReport{}
		}
		if out.Notes == nil {
			out.Notes = []string{}
		}
		return p.JSON(out)
	}
	if err := printFaults(p, rep); err != nil {
		return err
	}
	for _, n := range rep.Notes {
		p.Notef("note: %s", n)
	}
	p.Notef("%s", reportSummary(rep))
	return nil
}

// printFaults prints every fault as a table row.
func printFaults(p *printer, rep *datadir.Report) error {
	problems := rep.Problems()
	if len(problems) == 0 {
		return nil
	}
	t := p.Table("FILE", "OFFSET", "KIND", "REASON")
	for _, pb := range problems {
		t.Row(pb.Path, offsetText(pb.Offset), pb.Kind, pb.Reason)
	}
	return t.Flush()
}

func offsetText(off int64) string {
	if off == datadir.NoOffset {
		return "-"
	}
	return fmt.Sprint(off)
}

// reportSummary says "ok: 9 files checked (...)" or "3 faults in 2 files".
func reportSummary(rep *datadir.Report) string {
	bad := 0
	for _, f := range rep.Files {
		if !f.OK {
			bad++
		}
	}
	status := "ok"
	if !rep.OK() {
		status = fmt.Sprintf("%s in %s", plural(rep.Faults, "fault"), plural(bad, "file"))
	}
	s := fmt.Sprintf("%s: %s checked (%s)", status, plural(len(rep.Files), "file"), filesByKind(rep.Files))
	if rep.AppliedIndex > 0 {
		s += fmt.Sprintf("; recovery reaches index %d", rep.AppliedIndex)
	}
	if r := rep.Raft; r != nil {
		s += fmt.Sprintf("; raft log to index %d (snapshot %d, term %d)", r.LastIndex, r.SnapshotIndex, r.Term)
	}
	return s
}

// filesByKind says "manifest, 1 checkpoint, 2 deltas, 5 segments".
func filesByKind(files []datadir.FileReport) string {
	count := map[datadir.FileKind]int{}
	for _, f := range files {
		count[f.Kind]++
	}
	var parts []string
	for _, k := range []datadir.FileKind{datadir.KindManifest, datadir.KindCheckpoint, datadir.KindDelta, datadir.KindSegment, datadir.KindWAL,
		datadir.KindRaftState, datadir.KindRaftSegment, datadir.KindRaftMarker} {
		switch n := count[k]; {
		case n == 0:
		case k == datadir.KindManifest || k == datadir.KindWAL || k == datadir.KindRaftState:
			parts = append(parts, string(k))
		default:
			parts = append(parts, plural(n, string(k)))
		}
	}
	if len(parts) == 0 {
		return "nothing to check"
	}
	return strings.Join(parts, ", ")
}

// faultHint says what to do about the faults of a report, for the most
// important file kind with faults: manifest, then snapshot files, then WAL.
// A cluster member's directory (member: it holds raft/) is rebuilt from
// its peers instead: they hold the same state, and a member must never
// come back with less than it acknowledged under its old identity.
func faultHint(data string, rep *datadir.Report, member bool) string {
	kinds, tornOnly := map[datadir.FileKind]bool{}, true
	for _, p := range rep.Problems() {
		f := rep.Files[fileIndex(rep, p.Path)]
		kinds[f.Kind] = true
		tornOnly = tornOnly && p.Kind == "torn-tail"
	}
	first := "copy the data directory before changing anything; "
	if member && tornOnly && !kinds[datadir.KindSegment] {
		return "the raft log ends with a torn tail (entries the member never acknowledged): the member cuts it when it starts; start it with its usual flags"
	}
	if member && !tornOnly {
		return "this is a cluster member's directory: do not start it again; rebuild it from its peers " +
			"(move it aside, join a new member with kvtool serve --node NEW --join-cluster ANY_MEMBER_API --learner, " +
			"then kvtool cluster replace --addr ANY_MEMBER_API OLD NEW), as the README's recovery section shows"
	}
	switch {
	case kinds[datadir.KindManifest]:
		return first + "restore MANIFEST from a backup; " + cmdline(data, "inspect", "--no-state") +
			" lists the checkpoints, deltas and segments present"
	case kinds[datadir.KindCheckpoint] || kinds[datadir.KindDelta]:
		return first + "restore the damaged snapshot files from a backup, or rebuild the state with " +
			cmdline(data, "replay", "--to-index", "N", "--out", "FILE") + " at an index the intact files cover"
	case tornOnly:
		return repairHint(data)
	}
	return first + cmdline(data, "wal", "repair", "--dry-run", "--force") + " shows what a repair would cut and quarantine"
}

// fileIndex returns the index in rep.Files of the report of path.
func fileIndex(rep *datadir.Report, path string) int {
	for i, f := range rep.Files {
		if f.Path == path {
			return i
		}
	}
	return 0
}

// dirError gives an error of package datadir (or what it calls) its exit
// code and a hint.
func dirError(err error, data string) error {
	var ee *exitError
	switch {
	case err == nil, errors.As(err, &ee):
		return err
	case errors.Is(err, datadir.ErrNoDataDir):
		return failed(err, "check --data (or KVTOOL_DATA); a data directory holds MANIFEST, wal/ and snap/")
	case errors.Is(err, manifest.ErrNotFound):
		return failed(err, "the directory has no MANIFEST; "+cmdline(data, "verify")+" says what it holds")
	case errors.Is(err, format.ErrCorruption):
		return damaged(err, "run "+cmdline(data, "verify")+" to list every fault with its file and offset")
	}
	return failed(err, "")
}
