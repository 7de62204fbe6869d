package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/vfs"
)

// inspectCommand is `kvtool inspect`: a summary of the data directory.
func inspectCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "inspect",
		Usage: "summarise the data directory: manifest, segments, checkpoints, deltas, state",
		Description: `Prints what the data directory holds: the manifest (store ID, shards, epoch,
generation, base checkpoint, delta chain, first WAL index needed), every WAL
segment, every checkpoint and delta (saying which the manifest names), other
files, and the state they rebuild: applied index, key count and state hash.
For a cluster member it adds what its raft directory says: node and cluster
ID, raft term and vote, raft snapshot, membership, the raft log's extent, and
whether it joined a running cluster or was removed ("raft" in --json).

The state is rebuilt in memory exactly as recovery would (base, deltas, WAL
tail, stopping at a torn tail), which reads the whole base; --no-state skips
it. Exits 3 if it met damage on the way (run kvtool verify for every fault),
0 otherwise.

Reads only; never creates, locks or changes a file.

Examples:
  kvtool inspect
  kvtool inspect --json | jq '{applied_index, keys, state_hash}'
  kvtool inspect --no-state`,
		Flags: []cli.Flag{
			progressFlag(),
			&cli.BoolFlag{Name: "no-state", Usage: "do not rebuild the state (no applied index, keys or state hash)", DisableDefaultText: true},
		},
		Action: act(e, spec{scope: readDir}, func(c *call) error {
			return inspectDir(c.Context, c.fs, c.data(), datadir.InspectOptions{WithState: !c.Bool("no-state")})
		}),
	}
}

func inspectDir(cCtx *cli.Context, fsys vfs.FS, data string, opts datadir.InspectOptions) error {
	pr := startProgress(cCtx, "inspect", 0)
	opts.Progress = pr.Update
	s, err := datadir.Inspect(fsys, data, opts)
	pr.Done()
	if err != nil {
		return dirError(err, data)
	}
	rs, err := cluster.InspectRaft(fsys, data)
	if err != nil {
		return dirError(err, data)
	}
	p := newPrinter(cCtx)
	if p.json {
		out := toInspectJSON(s)
		out.Raft = toRaftJSON(rs)
		err = p.JSON(out)
	} else {
		err = printInspect(p, s, rs)
	}
	if err != nil {
		return err
	}
	if err := inspectError(s, data); err != nil {
		return err
	}
	if rs != nil && (rs.StateErr != nil || rs.LogErr != nil || rs.MarkerErr != nil) {
		return damaged(fmt.Errorf("inspect: the raft directory: %w", errors.Join(rs.StateErr, rs.LogErr, rs.MarkerErr)),
			"run "+cmdline(data, "verify")+" to list every fault")
	}
	return nil
}

// inspectError is the exit error for what Inspect could not describe.
func inspectError(s *datadir.Summary, data string) error {
	switch {
	case s.ManifestErr != nil:
		return dirError(fmt.Errorf("inspect: the manifest: %w", s.ManifestErr), data)
	case s.StateErr != nil:
		return dirError(fmt.Errorf("inspect: cannot rebuild the state: %w", s.StateErr), data)
	case len(s.WALProblems) > 0:
		return damaged(fmt.Errorf("inspect: the WAL has %s", plural(len(s.WALProblems), "problem")),
			"run "+cmdline(data, "verify")+" to list every fault")
	}
	return nil
}

// ---- JSON ----

// inspectJSON is the document `inspect --json` prints. The state fields are
// absent with --no-state or when the state could not be rebuilt.
type inspectJSON struct {
	DataDir       string           `json:"data_dir"`
	Manifest      *manifestJSON    `json:"manifest"`
	ManifestError string           `json:"manifest_error,omitempty"`
	Segments      []segmentJSON    `json:"segments"`
	WALProblems   []problemJSON    `json:"wal_problems"`
	Checkpoints   []checkpointJSON `json:"checkpoints"`
	Deltas        []deltaJSON      `json:"deltas"`
	OtherFiles    []string         `json:"other_files"`
	AppliedIndex  *uint64          `json:"applied_index,omitempty"`
	Keys          *int             `json:"keys,omitempty"`
	StateHash     string           `json:"state_hash,omitempty"`
	TornTail      *bool            `json:"torn_tail,omitempty"`
	StateError    string           `json:"state_error,omitempty"`
	Raft          *raftJSON        `json:"raft,omitempty"` // a cluster member's raft directory
}

// raftJSON is a member's raft directory in inspect --json (IDs in hex, as
// cluster status prints them).
type raftJSON struct {
	ClusterID      string    `json:"cluster_id"`
	NodeID         string    `json:"node_id"`
	Term           uint64    `json:"term"`
	Vote           string    `json:"vote,omitempty"`
	CommitHint     uint64    `json:"commit_hint"`
	SnapshotIndex  uint64    `json:"snapshot_index"`
	SnapshotTerm   uint64    `json:"snapshot_term"`
	ConfIndex      uint64    `json:"conf_index"`
	Voters         []string  `json:"voters"`
	Learners       []string  `json:"learners"`
	VotersOutgoing []string  `json:"voters_outgoing,omitempty"`
	LogSegments    int       `json:"log_segments"`
	LogFirstIndex  uint64    `json:"log_first_index"`
	LogLastIndex   uint64    `json:"log_last_index"`
	Joined         *joinJSON `json:"joined,omitempty"`
	RemovedAt      uint64    `json:"removed_at_index,omitempty"`
	NoState        bool      `json:"no_state,omitempty"` // no STATE yet: the member's first start creates it
	Errors         []string  `json:"errors,omitempty"`
}

// joinJSON is a joiner's JOIN record in inspect --json.
type joinJSON struct {
	Name         string `json:"name"`
	CatchUpIndex uint64 `json:"catch_up_index"`
	StayLearner  bool   `json:"stay_learner"`
}

func toRaftJSON(r *cluster.RaftSummary) *raftJSON {
	if r == nil {
		return nil
	}
	out := &raftJSON{ClusterID: hex16(r.ClusterID), NodeID: hex16(r.NodeID), Term: r.Term, CommitHint: r.Commit,
		SnapshotIndex: r.SnapIndex, SnapshotTerm: r.SnapTerm, ConfIndex: r.ConfIndex,
		Voters: hexIDs(r.Voters), Learners: hexIDs(r.Learners), VotersOutgoing: hexIDs(r.VotersOutgoing),
		LogSegments: r.LogSegments, LogFirstIndex: r.LogFirst, LogLastIndex: r.LogLast, RemovedAt: r.RemovedAt, NoState: r.NoState}
	if r.Vote != 0 {
		out.Vote = hex16(r.Vote)
	}
	if j := r.Join; j != nil {
		out.Joined = &joinJSON{Name: j.Self.Name, CatchUpIndex: j.CatchUp, StayLearner: j.Self.StayLearner}
	}
	for _, err := range []error{r.StateErr, r.LogErr, r.MarkerErr} {
		if err != nil {
			out.Errors = append(out.Errors, err.Error())
		}
	}
	return out
}

func hexIDs(ids []uint64) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, hex16(id))
	}
	return out
}

// manifestJSON is a manifest in JSON output.
type manifestJSON struct {
	StoreID       string        `json:"store_id"`
	Shards        int           `json:"shards"`
	Epoch         uint64        `json:"epoch"`
	Generation    uint64        `json:"generation"`
	SegmentSize   int64         `json:"segment_size"`
	Base          *fileRefJSON  `json:"base"`
	Deltas        []fileRefJSON `json:"deltas"`
	SnapshotIndex uint64        `json:"snapshot_index"`
	WALFirstIndex uint64        `json:"wal_first_index"`
}

// fileRefJSON is a file the manifest names.
type fileRefJSON struct {
	Name      string `json:"name"`
	FromIndex uint64 `json:"from_index"`
	Index     uint64 `json:"index"`
	Size      int64  `json:"size"`
	Checksum  string `json:"checksum"`
}

func toManifestJSON(m *manifest.Manifest) *manifestJSON {
	if m == nil {
		return nil
	}
	out := &manifestJSON{StoreID: m.StoreID.String(), Shards: m.Shards, Epoch: m.Epoch, Generation: m.Generation,
		SegmentSize: m.SegmentSize, Deltas: []fileRefJSON{}, SnapshotIndex: m.SnapshotIndex(), WALFirstIndex: m.WALFirstIndex}
	if m.Base != nil {
		b := toFileRefJSON(*m.Base)
		out.Base = &b
	}
	for _, d := range m.Deltas {
		out.Deltas = append(out.Deltas, toFileRefJSON(d))
	}
	return out
}

func toFileRefJSON(r manifest.FileRef) fileRefJSON {
	return fileRefJSON{Name: r.Name, FromIndex: r.FromIndex, Index: r.Index, Size: r.Size, Checksum: hex16(r.Checksum)}
}

func hex16(v uint64) string { return fmt.Sprintf("%016x", v) }

func toInspectJSON(s *datadir.Summary) inspectJSON {
	out := inspectJSON{DataDir: s.Dir, Manifest: toManifestJSON(s.Manifest), Segments: []segmentJSON{},
		WALProblems: []problemJSON{}, OtherFiles: s.Other}
	if s.ManifestErr != nil {
		out.ManifestError = s.ManifestErr.Error()
	}
	for _, seg := range s.Segments {
		out.Segments = append(out.Segments, toSegmentJSON(seg))
	}
	for _, pb := range s.WALProblems {
		out.WALProblems = append(out.WALProblems, toProblemJSON(pb))
	}
	out.Checkpoints, out.Deltas = snapshotsJSON(&s.Snapshots)
	if out.OtherFiles == nil {
		out.OtherFiles = []string{}
	}
	if st := s.State; st != nil {
		out.AppliedIndex, out.Keys, out.TornTail = &st.AppliedIndex, &st.Keys, &st.TornTail
		out.StateHash = format.FormatStateHash(st.StateHash)
	}
	if s.StateErr != nil {
		out.StateError = s.StateErr.Error()
	}
	return out
}

// ---- text ----

func printInspect(p *printer, s *datadir.Summary, rs *cluster.RaftSummary) error {
	if err := printInspectHead(p, s); err != nil {
		return err
	}
	if err := printRaft(p, rs); err != nil {
		return err
	}
	if err := printSegments(p, s); err != nil {
		return err
	}
	if err := printSnapshots(p, &s.Snapshots); err != nil {
		return err
	}
	for _, o := range s.Other {
		p.Notef("note: %s", o)
	}
	return nil
}

// printInspectHead prints the manifest and the state as aligned fields.
func printInspectHead(p *printer, s *datadir.Summary) error {
	t := p.Table("data directory", s.Dir)
	if m := s.Manifest; m != nil {
		t.Row("store", fmt.Sprintf("%s (%d shards, epoch %d, manifest generation %d)", m.StoreID, m.Shards, m.Epoch, m.Generation))
		t.Row("base", baseText(m))
		t.Row("deltas", chainText(m))
		t.Row("WAL needed from", fmt.Sprintf("index %d", m.WALFirstIndex))
	} else if errors.Is(s.ManifestErr, manifest.ErrNotFound) {
		t.Row("manifest", "MISSING: recovery cannot start without it")
	} else {
		t.Row("manifest", "UNREADABLE: "+errText(s.ManifestErr))
	}
	switch st := s.State; {
	case st != nil:
		t.Row("applied index", st.AppliedIndex)
		t.Row("keys", st.Keys)
		t.Row("state hash", format.FormatStateHash(st.StateHash))
		if st.TornTail {
			t.Row("torn tail", "the WAL ends in a torn record (never acknowledged); replay stops before it")
		}
	case s.StateErr != nil:
		t.Row("state", "CANNOT BE REBUILT: "+errText(s.StateErr))
	}
	return t.Flush()
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func baseText(m *manifest.Manifest) string {
	if m.Base == nil {
		return "none (the state starts empty at index 0)"
	}
	return fmt.Sprintf("%s (index %d, %d bytes)", m.Base.Name, m.Base.Index, m.Base.Size)
}

func chainText(m *manifest.Manifest) string {
	if len(m.Deltas) == 0 {
		return "none"
	}
	last := m.Deltas[len(m.Deltas)-1]
	return fmt.Sprintf("%s, up to index %d", plural(len(m.Deltas), "delta"), last.Index)
}

func printSegments(p *printer, s *datadir.Summary) error {
	if len(s.Segments) == 0 {
		p.Notef("\nno WAL segments")
		return nil
	}
	p.Notef("")
	t := p.Table("SEGMENT", "FIRST", "LAST", "RECORDS", "BYTES")
	for _, seg := range s.Segments {
		t.Row(seg.Name, seg.FirstIndex, lastIndexText(seg), seg.Records, seg.Size)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if n := len(s.WALProblems); n > 0 {
		p.Notef("the WAL has %s; run kvtool verify to list them", plural(n, "problem"))
	}
	return nil
}

// printSnapshots prints the checkpoint and delta tables of inspect.
func printSnapshots(p *printer, s *datadir.Snapshots) error {
	if len(s.Checkpoints) > 0 {
		p.Notef("")
		if err := printCheckpointTable(p, s.Checkpoints, s.Manifest != nil); err != nil {
			return err
		}
	}
	if len(s.Deltas) > 0 {
		p.Notef("")
		if err := printDeltaTable(p, s.Deltas, s.Manifest != nil); err != nil {
			return err
		}
	}
	return nil
}

// errorOf explains why a snapshot file could not be read, or "".
func errorOf(err error) string {
	if err == nil {
		return ""
	}
	if ce := format.AsCorruption(err); ce != nil && errors.Is(err, format.ErrCorruption) {
		return fmt.Sprintf("damaged at offset %d: %s", ce.Offset, ce.Reason)
	}
	return err.Error()
}

// printRaft prints a member's raft directory as aligned fields.
func printRaft(p *printer, r *cluster.RaftSummary) error {
	if r == nil {
		return nil
	}
	p.Notef("")
	if r.StateErr != nil {
		t := p.Table("raft state", "UNREADABLE: "+errText(r.StateErr))
		return printRaftLog(t, r)
	}
	if r.NoState {
		t := p.Table("raft state", "none yet (the member stopped before it first started raft; its start creates it)")
		return printRaftLog(t, r)
	}
	t := p.Table("cluster member", fmt.Sprintf("node %s of cluster %s", hex16(r.NodeID), hex16(r.ClusterID)))
	vote := "none"
	if r.Vote != 0 {
		vote = hex16(r.Vote)
	}
	t.Row("raft term", fmt.Sprintf("%d (vote %s, commit hint %d)", r.Term, vote, r.Commit))
	t.Row("raft snapshot", fmt.Sprintf("index %d, term %d", r.SnapIndex, r.SnapTerm))
	m := fmt.Sprintf("voters %s", idList(r.Voters))
	if len(r.Learners) > 0 {
		m += ", learners " + idList(r.Learners)
	}
	if len(r.VotersOutgoing) > 0 {
		m += ", leaving voters " + idList(r.VotersOutgoing) + " (a joint change)"
	}
	t.Row("membership", fmt.Sprintf("%s (after index %d)", m, r.ConfIndex))
	return printRaftLog(t, r)
}

// printRaftLog adds the raft log and the markers to t, and prints it.
func printRaftLog(t *table, r *cluster.RaftSummary) error {
	switch {
	case r.LogErr != nil:
		t.Row("raft log", "UNREADABLE: "+errText(r.LogErr))
	case r.LogSegments == 0 || r.LogLast < r.LogFirst:
		t.Row("raft log", fmt.Sprintf("empty (%s)", plural(r.LogSegments, "segment")))
	default:
		t.Row("raft log", fmt.Sprintf("index %d to %d (%s)", r.LogFirst, r.LogLast, plural(r.LogSegments, "segment")))
	}
	if j := r.Join; j != nil {
		t.Row("joined", fmt.Sprintf("as %s, catching up to index %d before serving", j.Self.Name, j.CatchUp))
	}
	if r.RemovedAt != 0 {
		t.Row("REMOVED", fmt.Sprintf("at index %d: this member refuses to start until its data directory is wiped", r.RemovedAt))
	}
	if r.MarkerErr != nil {
		t.Row("markers", "UNREADABLE: "+errText(r.MarkerErr))
	}
	return t.Flush()
}

func idList(ids []uint64) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(hexIDs(ids), ", ")
}
