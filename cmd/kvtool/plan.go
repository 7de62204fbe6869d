package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// --dry-run of checkpoint create, delta merge and wal compact: what the
// step would write and drop, worked out from the manifest, the WAL's
// segments and DATA/snap as the store's own maintenance decides it
// (store.Checkpoint, Merge, Compact), without opening the store for
// writing, taking DATA/LOCK or changing a byte. Against a server (--addr)
// it works from GET /v1/status instead.

// maintKind is the maintenance step a plan is for.
type maintKind string

const (
	planCheckpoint maintKind = "checkpoint"
	planMerge      maintKind = "merge"
	planCompact    maintKind = "compact"
)

// planState is what a plan is worked out from.
type planState struct {
	dir     string // the data directory (the server's, for --addr)
	applied uint64 // the index the state is at
	keys    int    // keys in the state; -1 when unknown
	base    *manifest.FileRef
	deltas  []manifest.FileRef
	walFrom uint64                // the manifest's first WAL index needed
	segs    []segment.SegmentInfo // oldest first; Path may be empty
	snap    []string              // names in DATA/snap; nil when unknown (--addr)
	pinWAL  uint64                // the first WAL index a lease keeps; 0: none
	pinned  map[string]bool       // snapshot file names leases keep
	notes   []string
}

// localPlanState reads data without opening the store.
func localPlanState(fsys vfs.FS, data string) (*planState, error) {
	m, err := manifest.Load(fsys, data)
	if err != nil {
		return nil, err
	}
	walDir := filepath.Join(data, format.WALDir)
	segs, err := segment.List(fsys, walDir)
	if err != nil {
		return nil, err
	}
	snap, err := fsys.List(filepath.Join(data, format.SnapDir))
	if err != nil && !vfs.IsNotExist(err) {
		return nil, err
	}
	if snap == nil {
		snap = []string{}
	}
	ps := &planState{dir: data, keys: -1, base: m.Base, deltas: m.Deltas, walFrom: m.WALFirstIndex, segs: segs, snap: snap,
		pinned: map[string]bool{}, applied: m.SnapshotIndex()}
	for _, s := range segs {
		if s.Records > 0 {
			ps.applied = max(ps.applied, s.LastIndex)
		}
	}
	ps.notes = append(ps.notes, "read without taking DATA/LOCK: a server running on it may have moved on, and its leases may keep more")
	return ps, nil
}

// remotePlanState asks the server of c for its status.
func remotePlanState(ctx context.Context, c *client.Client) (*planState, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	ps := &planState{dir: st.DataDir, applied: st.AppliedIndex, keys: st.Keys, pinned: map[string]bool{}, walFrom: 1}
	if b := st.Checkpoint; b != nil {
		ps.base = &manifest.FileRef{Name: b.Name, Index: b.Index}
		ps.walFrom = b.Index + 1
	}
	for _, d := range st.Deltas {
		ps.deltas = append(ps.deltas, manifest.FileRef{Name: d.Name, FromIndex: d.FromIndex, Index: d.Index})
	}
	for _, s := range st.Segments {
		ps.segs = append(ps.segs, segment.SegmentInfo{Name: s.Name, Path: filepath.Join(st.DataDir, format.WALDir, s.Name),
			FirstIndex: s.FirstIndex, LastIndex: s.LastIndex, Records: s.Records, Size: s.Bytes})
	}
	for _, l := range st.Leases {
		if l.State != "active" {
			continue
		}
		if ps.pinWAL == 0 || l.PinnedIndex+1 < ps.pinWAL {
			ps.pinWAL = l.PinnedIndex + 1
		}
		for _, f := range l.Files {
			ps.pinned[filepath.Base(f)] = true
		}
	}
	ps.notes = append(ps.notes, "from the server's status; the state may move on before a real run")
	return ps, nil
}

// plan is what a maintenance step would do.
type plan struct {
	kind        maintKind
	nothing     string // why the step would do nothing ("": it would act)
	ckptName    string // the checkpoint it would write ("": none)
	ckptIndex   uint64
	folds       []string // base and deltas the new checkpoint replaces in the manifest
	walFrom     uint64   // the manifest's first WAL index needed afterwards
	rotate      bool     // the active segment would be sealed first
	dropSegs    []segment.SegmentInfo
	removeFiles []string // names in DATA/snap
	notes       []string
}

// makePlan works out what kind would do on ps, as store.Checkpoint, Merge
// and Compact decide it.
func makePlan(kind maintKind, ps *planState) *plan {
	p := &plan{kind: kind, walFrom: ps.walFrom, notes: ps.notes}
	switch kind {
	case planMerge:
		if len(ps.deltas) == 0 {
			p.nothing = "the manifest has no deltas to merge"
			return p
		}
		p.checkpointAt(ps, ps.deltas[len(ps.deltas)-1].Index)
	case planCheckpoint, planCompact:
		if ps.base != nil && ps.base.Index == ps.applied && len(ps.deltas) == 0 {
			if kind == planCheckpoint {
				p.nothing = fmt.Sprintf("the state at index %d is already checkpointed as %s", ps.applied, ps.base.Name)
				return p
			}
		} else {
			p.checkpointAt(ps, ps.applied)
		}
	}
	if kind == planCompact {
		p.collect(ps)
	}
	return p
}

// checkpointAt plans a new base checkpoint at idx folding the chain.
func (p *plan) checkpointAt(ps *planState, idx uint64) {
	p.ckptName, p.ckptIndex, p.walFrom = format.CheckpointName(idx), idx, idx+1
	if ps.base != nil {
		p.folds = append(p.folds, ps.base.Name)
	}
	for _, d := range ps.deltas {
		p.folds = append(p.folds, d.Name)
	}
}

// collect plans what compaction drops: segments wholly before the first
// index kept (sealing the active one when it is wholly before it too) and
// snapshot files the new manifest does not name and no lease pins.
func (p *plan) collect(ps *planState) {
	keepFrom := p.walFrom
	if ps.pinWAL != 0 {
		keepFrom = min(keepFrom, ps.pinWAL)
	}
	segs := ps.segs
	if n := len(segs); n > 0 && segs[n-1].Records > 0 && segs[n-1].LastIndex < keepFrom {
		p.rotate = true
		last := segs[n-1].LastIndex
		segs = append(segs[:n:n], segment.SegmentInfo{FirstIndex: last + 1, LastIndex: last})
	}
	for len(segs) >= 2 && segs[0].LastIndex < keepFrom {
		p.dropSegs = append(p.dropSegs, segs[0])
		segs = segs[1:]
	}
	keep := map[string]bool{}
	if p.ckptName != "" {
		keep[p.ckptName] = true
	} else {
		if ps.base != nil {
			keep[ps.base.Name] = true
		}
		for _, d := range ps.deltas {
			keep[d.Name] = true
		}
	}
	names := ps.snap
	if names == nil { // --addr: only the files the manifest named are known
		names = p.folds
		p.notes = append(p.notes, "also removed: any other checkpoint, delta or temporary file in "+
			filepath.Join(ps.dir, format.SnapDir)+" that the manifest does not name (a dry run through a server cannot list them)")
	}
	for _, n := range names {
		if !keep[n] && !ps.pinned[n] && isSnapName(n) {
			p.removeFiles = append(p.removeFiles, n)
		}
	}
	slices.Sort(p.removeFiles) // in the order compaction lists them
}

func isSnapName(name string) bool {
	_, ckpt := format.ParseCheckpointName(name)
	_, _, dlt := format.ParseDeltaName(name)
	return ckpt || dlt || format.IsTempName(name)
}

// planJSON is what --dry-run prints with --json.
type planJSON struct {
	DryRun      bool   `json:"dry_run"` // always true: nothing was changed
	Action      string `json:"action"`  // checkpoint, merge or compact
	NothingToDo string `json:"nothing_to_do,omitempty"`
	// Checkpoint is the file the step would write (null: none).
	Checkpoint *plannedFile `json:"checkpoint"`
	// Folds are the base and deltas the new checkpoint replaces in the
	// manifest (their files stay until compaction removes them).
	Folds           []string `json:"folds"`
	WALFirstIndex   uint64   `json:"wal_first_index"`
	RotateFirst     bool     `json:"rotate_first,omitempty"`
	DroppedSegments []string `json:"dropped_segments"`
	RemovedFiles    []string `json:"removed_files"`
	Notes           []string `json:"notes"`
}

type plannedFile struct {
	Name  string `json:"name"`
	Path  string `json:"path"`
	Index uint64 `json:"index"`
}

func (p *plan) json(dir string) planJSON {
	out := planJSON{DryRun: true, Action: string(p.kind), NothingToDo: p.nothing, Folds: nonNilStrings(p.folds),
		WALFirstIndex: p.walFrom, RotateFirst: p.rotate, DroppedSegments: []string{}, RemovedFiles: []string{}, Notes: nonNilStrings(p.notes)}
	if p.ckptName != "" {
		out.Checkpoint = &plannedFile{Name: p.ckptName, Path: filepath.Join(dir, format.SnapDir, p.ckptName), Index: p.ckptIndex}
	}
	for _, s := range p.dropSegs {
		out.DroppedSegments = append(out.DroppedSegments, segPath(dir, s))
	}
	for _, f := range p.removeFiles {
		out.RemovedFiles = append(out.RemovedFiles, filepath.Join(dir, format.SnapDir, f))
	}
	return out
}

func segPath(dir string, s segment.SegmentInfo) string {
	if s.Path != "" {
		return s.Path
	}
	return filepath.Join(dir, format.WALDir, s.Name)
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// print writes the plan for a person.
func (p *plan) print(pr *printer, dir string, keys int) error {
	if pr.json {
		return pr.JSON(p.json(dir))
	}
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	if p.nothing != "" {
		line("dry run: nothing to do: %s", p.nothing)
		_, err := fmt.Fprint(pr.w, b.String())
		return writeErr(err)
	}
	if p.ckptName != "" {
		what := fmt.Sprintf("at index %d", p.ckptIndex)
		if keys >= 0 && p.kind != planMerge {
			what += ", " + plural(keys, "key")
		}
		line("would write checkpoint %s %s", filepath.Join(dir, format.SnapDir, p.ckptName), what)
		fold := "the empty state"
		if len(p.folds) > 0 {
			fold = strings.Join(p.folds, ", ")
		}
		line("would publish a manifest naming it as the base, replacing %s; the WAL needed from index %d", fold, p.walFrom)
	} else if p.kind == planCompact {
		line("no checkpoint: the state is already checkpointed at the applied index; the WAL is needed from index %d", p.walFrom)
	}
	if p.rotate {
		line("would seal the active segment (it holds only entries before index %d)", p.walFrom)
	}
	for _, s := range p.dropSegs {
		line("would drop segment %s (%s)", segPath(dir, s), segRange(s))
	}
	for _, f := range p.removeFiles {
		line("would remove %s", filepath.Join(dir, format.SnapDir, f))
	}
	if _, err := fmt.Fprint(pr.w, b.String()); err != nil {
		return writeErr(err)
	}
	for _, n := range p.notes {
		pr.Notef("note: %s", n)
	}
	if p.kind == planCompact {
		pr.Notef("dry run: would drop %s and remove %s; nothing was changed", plural(len(p.dropSegs), "segment"), plural(len(p.removeFiles), "file"))
	} else {
		pr.Notef("dry run: nothing was changed")
	}
	return nil
}

func segRange(s segment.SegmentInfo) string {
	if s.Records == 0 {
		return "no entries"
	}
	return fmt.Sprintf("indexes %d to %d", s.FirstIndex, s.LastIndex)
}

// dryRunHelp is the help of --dry-run of the maintenance commands.
const dryRunHelp = `--dry-run prints what the command would write, fold away, drop and remove,
and changes nothing: it takes no lock (so it also works on a directory a
server holds) and never opens the store for writing.`

// dryRunFlag is --dry-run of the maintenance commands.
func dryRunFlag() cli.Flag {
	return &cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be written and dropped; change nothing (takes no lock)", DisableDefaultText: true}
}

// dryRun prints the plan of kind for --addr or --data.
func dryRun(c *call, kind maintKind) error {
	var ps *planState
	var err error
	if c.t.remote() {
		cl := client.New(c.t.addr)
		defer cl.Close()
		ps, err = remotePlanState(c.Context.Context, cl)
	} else {
		if _, err := walDirOf(c.fs, c.data()); err != nil {
			return err
		}
		ps, err = localPlanState(c.fs, c.data())
		if err != nil {
			return planError(err, c.data())
		}
	}
	if err != nil {
		return maintError(c.Context, err)
	}
	return makePlan(kind, ps).print(newPrinter(c.Context), ps.dir, ps.keys)
}

// planError gives a failure to read a directory for a plan its exit code.
func planError(err error, data string) error {
	if format.AsCorruption(err) != nil || errors.Is(err, segment.ErrTornTail) {
		return walError(err, data)
	}
	return dirError(err, data)
}
