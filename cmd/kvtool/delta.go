package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/delta"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// deltaCommand is `kvtool delta`: incremental snapshots in DATA/snap.
func deltaCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "delta",
		Usage: "create, list, merge and verify deltas (incremental snapshots)",
		Description: `A delta holds, for every key changed in an index range (from, to], its value
at "to" or a tombstone, in DATA/snap/<from>-<to>.delta (16 hex digits each),
in the block format of checkpoints. Each delta names its parent (the base
checkpoint or the delta before it); the manifest lists the chain on top of
its base, and recovery applies base, deltas, then the WAL tail.

list and verify only read: they never create, lock or change a file. create
and merge take DATA/LOCK (or, with --addr, ask a running server).

Examples:
  kvtool delta create
  kvtool delta list
  kvtool delta merge
  kvtool delta verify`,
		Subcommands: []*cli.Command{
			deltaCreateCommand(e),
			deltaListCommand(e),
			deltaMergeCommand(e),
			deltaVerifyCommand(e),
		},
	}
}

// ---- delta create ----

func deltaCreateCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "create",
		Usage: "write a delta of the keys changed since the last base or delta",
		Description: `Writes the keys changed since the end of the manifest's chain (their values
at the applied index, or tombstones) as a delta and appends it to the chain.
Prints the delta: file, index range, keys changed, size. If no key changed
it prints "nothing to do" and exits 0.

` + maintTargetHelp + `

Examples:
  kvtool delta create
  kvtool delta create --addr 127.0.0.1:7070 --json`,
		Flags: []cli.Flag{progressFlag(), addrFlag()},
		Action: act(e, spec{scope: serverOrDir}, func(c *call) error {
			remote, local, err := maintain(c,
				func(ctx context.Context, c *client.Client) (*client.DeltaResult, error) { return c.Delta(ctx) },
				func(ctx context.Context, st *store.Store) (delta.Info, error) { return st.Delta(ctx) })
			switch {
			case nothingToDo(err):
				return printNothingToDo(c.Context, err)
			case err != nil:
				return maintError(c.Context, err)
			}
			if remote == nil {
				remote = server.DeltaResult(local)
			}
			return printDeltaWritten(newPrinter(c.Context), remote)
		}),
	}
}

// deltaCreatedJSON is the --json output of delta create.
type deltaCreatedJSON struct {
	Created bool `json:"created"` // always true
	*client.DeltaResult
	storeJSON
}

func printDeltaWritten(p *printer, d *client.DeltaResult) error {
	if p.json {
		return p.JSON(deltaCreatedJSON{Created: true, DeltaResult: d, storeJSON: p.store})
	}
	if p.quiet {
		_, err := fmt.Fprintln(p.w, d.Path)
		return writeErr(err)
	}
	p.Notef("delta written: %s covering (%d, %d]: %s (%s, %s), %d bytes",
		d.Path, d.FromIndex, d.ToIndex, plural(int(d.Keys), "key"), plural(int(d.Puts), "put"), plural(int(d.Tombstones), "tombstone"), d.Size)
	return nil
}

// ---- delta list ----

func deltaListCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "describe every delta in DATA/snap, marking the manifest's chain",
		Description: `Prints one row per delta in DATA/snap, by range: file name, index range,
keys changed (puts and tombstones), bytes, parent, and its role: its
position in the manifest's chain ("chain 1/3"), or "-" for deltas the
manifest does not name (garbage that compaction removes). Reads only the
header and footer of each file (kvtool delta verify reads them whole).

Examples:
  kvtool delta list
  kvtool delta list --json | jq -r '.deltas[] | select(.in_chain) | .name'`,
		Action: snapListAction(e, deltaFiles),
	}
}

// deltaFiles is the delta kind for list and verify.
var deltaFiles = &snapKind{
	noun: delta.Kind.Noun, magic: delta.Kind.Magic, marked: "in the chain", maxFiles: 0,
	count: func(s *datadir.Snapshots) int { return len(s.Deltas) },
	listJSON: func(snapDir string, s *datadir.Snapshots) any {
		_, deltas := snapshotsJSON(s)
		return struct {
			SnapDir       string      `json:"snap_dir"`
			ManifestError string      `json:"manifest_error,omitempty"`
			Base          string      `json:"base"`
			Deltas        []deltaJSON `json:"deltas"`
		}{snapDir, errText(s.ManifestErr), baseName(s), deltas}
	},
	table: func(p *printer, s *datadir.Snapshots) error {
		return printDeltaTable(p, s.Deltas, s.Manifest != nil)
	},
	verify: func(fsys vfs.FS, data, _ string, opts datadir.VerifyOptions) (*datadir.Report, error) {
		return datadir.VerifyChain(fsys, data, opts)
	},
	state: func(_ vfs.FS, _, _ string, rep *datadir.Report) (*uint64, string) {
		if rep.Manifest == nil {
			return nil, ""
		}
		return &rep.SnapshotIndex, ""
	},
}

// deltaJSON is a delta in list and inspect output.
type deltaJSON struct {
	Name       string `json:"name"`
	Path       string `json:"path"`
	FromIndex  uint64 `json:"from_index"`
	ToIndex    uint64 `json:"to_index"`
	Term       uint64 `json:"term"`
	Parent     string `json:"parent"`
	Keys       uint64 `json:"keys"`
	Puts       uint64 `json:"puts"`
	Tombstones uint64 `json:"tombstones"`
	Blocks     int    `json:"blocks"`
	Size       int64  `json:"size"`
	Checksum   string `json:"checksum,omitempty"`
	InChain    bool   `json:"in_chain"`
	Error      string `json:"error,omitempty"` // why the header or footer could not be read
}

func toDeltaJSON(d datadir.DeltaFile) deltaJSON {
	out := deltaJSON{Name: d.Name, Path: d.Path, InChain: d.InChain, Error: errorOf(d.Err)}
	if d.Err != nil {
		return out
	}
	out.FromIndex, out.ToIndex, out.Term, out.Parent = d.Meta.From, d.Meta.To, d.Meta.Term, d.Meta.Parent
	out.Keys, out.Puts, out.Tombstones = d.Keys(), d.Puts, d.Tombstones
	out.Blocks, out.Size, out.Checksum = d.Blocks, d.Size, hex16(d.Checksum)
	return out
}

// baseName is the manifest's base checkpoint, or "".
func baseName(s *datadir.Snapshots) string {
	if s.Manifest == nil || s.Manifest.Base == nil {
		return ""
	}
	return s.Manifest.Base.Name
}

func printDeltaTable(p *printer, deltas []datadir.DeltaFile, manifestKnown bool) error {
	chainLen := 0
	for _, d := range deltas {
		if d.InChain {
			chainLen++
		}
	}
	t := p.Table("DELTA", "FROM", "TO", "KEYS", "BYTES", "PARENT", "ROLE")
	pos := 0
	for _, d := range deltas {
		if d.Err != nil {
			t.Row(d.Name, "?", "?", "?", "?", "?", "UNREADABLE: "+errorOf(d.Err))
			continue
		}
		role := roleText(false, manifestKnown, "")
		if d.InChain {
			pos++
			role = fmt.Sprintf("chain %d/%d", pos, chainLen)
		}
		t.Row(d.Name, d.Meta.From, d.Meta.To, d.Keys(), d.Size, parentText(d.Meta.Parent), role)
	}
	return t.Flush()
}

func parentText(parent string) string {
	if parent == "" {
		return "(empty state)"
	}
	return parent
}

// ---- delta merge ----

func deltaMergeCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "merge",
		Usage: "fold the base and its deltas into a new base checkpoint",
		Description: `Merges the base checkpoint and every delta of the manifest's chain into a
new checkpoint at the chain's last index, by a streaming merge whose memory
does not depend on the size of the state, and publishes a manifest naming
it as the base with an empty chain. The old files stay until compaction
(kvtool wal compact) removes them. Prints the checkpoint written; if the
chain has no deltas it prints "nothing to do" and exits 0.

` + maintTargetHelp + `

` + dryRunHelp + `

Examples:
  kvtool delta merge
  kvtool delta merge --dry-run
  kvtool delta merge --addr 127.0.0.1:7070 --json`,
		Flags: []cli.Flag{progressFlag(), addrFlag(), dryRunFlag()},
		Action: act(e, spec{scope: serverOrDir}, func(c *call) error {
			if c.Bool("dry-run") {
				return dryRun(c, planMerge)
			}
			remote, local, err := maintain(c,
				func(ctx context.Context, c *client.Client) (*client.CheckpointResult, error) { return c.Merge(ctx) },
				func(ctx context.Context, st *store.Store) (checkpoint.Info, error) { return st.Merge(ctx) })
			return finishCheckpoint(c.Context, "merged checkpoint", remote, local, err)
		}),
	}
}

// ---- delta verify ----

func deltaVerifyCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check every delta of the manifest's chain and the chain itself; exit 3 on problems",
		Description: `Reads every delta the manifest names, whole: header, every block checksum
and encoding, key order, index, footer, whole-file checksum; checks that each
is the file the manifest recorded (size, range, checksum) and belongs to the
store; and checks the chain: each delta starts where the one before ends
(the base's index for the first) and names it as its parent. The base
checkpoint's header is read for the chain; kvtool checkpoint verify checks
the rest of it.

Prints every problem (file, offset, kind, reason), then a count; exits 3 if
there is any. Reads only; changes nothing.

Examples:
  kvtool delta verify
  kvtool delta verify --json | jq '.faults'`,
		Flags:  []cli.Flag{progressFlag()},
		Action: snapVerifyAction(e, deltaFiles),
	}
}
