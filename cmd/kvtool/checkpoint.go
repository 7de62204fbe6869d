package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// checkpointCommand is `kvtool checkpoint`: full snapshots in DATA/snap.
func checkpointCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "checkpoint",
		Usage: "create, list, inspect and verify checkpoints (full snapshots)",
		Description: `A checkpoint is a full snapshot of the state at one applied index, in
DATA/snap/<index in 16 hex digits>.ckpt: sorted key/value pairs in
zstd-compressed, checksummed blocks, an index of the blocks, and a footer
with the counts, the index and term, the state hash and a whole-file
checksum. The manifest names one checkpoint as the base that recovery starts
from; the others are garbage that compaction removes.

list, inspect and verify only read: they never create, lock or change a file.
create takes DATA/LOCK (or, with --addr, asks a running server).

Examples:
  kvtool checkpoint create
  kvtool checkpoint list
  kvtool checkpoint inspect 0000000000000400.ckpt
  kvtool checkpoint verify`,
		Subcommands: []*cli.Command{
			checkpointCreateCommand(e),
			checkpointListCommand(e),
			checkpointInspectCommand(e),
			checkpointVerifyCommand(e),
		},
	}
}

// ---- running maintenance on --data or --addr ----

const maintTargetHelp = `With --addr HOST:PORT (or KVTOOL_ADDR) the running server does it, without
stopping its readers or writers; otherwise the command opens --data itself,
holding DATA/LOCK, which fails while another process (a server) holds it.`

// maintain runs one maintenance step: remote against the server of --addr,
// or local on the store of --data, opened (and closed) here. Exactly one of
// the results is set. It says which store it acted on (noteTarget, and
// printer.store for --json).
func maintain[R, L any](c *call,
	remote func(context.Context, *client.Client) (R, error),
	local func(context.Context, *store.Store) (L, error),
) (r R, l L, err error) {
	cCtx, t := c.Context, c.t
	defer func() {
		if err == nil || nothingToDo(err) {
			actedOn(cCtx, t)
		}
	}()
	if t.remote() {
		c := client.New(t.addr)
		defer c.Close()
		r, err = remote(cCtx.Context, c)
		return r, l, err
	}
	data := t.data
	read, write := dirWork(c.fs, data)
	fsys, ip := startIOProgress(cCtx, cCtx.Command.Name, c.fs, read+write)
	defer ip.Done()
	st, err := store.Open(store.Options{FS: fsys, Dir: data})
	if err != nil {
		return r, l, openError(err, data)
	}
	l, err = local(cCtx.Context, st)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close the data directory: %w", cerr)
	}
	return r, l, err
}

// nothingToDo reports whether err says a maintenance step had nothing to do.
func nothingToDo(err error) bool {
	return errors.Is(err, store.ErrNothingToDo) || errors.Is(err, client.ErrNothingToDo)
}

// reasonOf is the message of a nothing-to-do error without package prefixes.
func reasonOf(err error) string {
	msg := err.Error()
	for _, prefix := range []string{client.ErrNothingToDo.Error() + ": ", "server answered 409: "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	for _, what := range []string{"checkpoint: ", "delta: ", "merge: ", "compact: "} {
		msg = strings.TrimPrefix(msg, what)
	}
	return strings.TrimPrefix(msg, store.ErrNothingToDo.Error()+": ")
}

// maintError gives a failed maintenance step its exit code and a hint.
func maintError(cCtx *cli.Context, err error) error {
	var ee *exitError
	data := globalsOf(cCtx).Data
	switch {
	case errors.As(err, &ee):
		return err
	case errors.Is(err, client.ErrNoServer), errors.Is(err, client.ErrNotKvtool):
		return serverError(err)
	case errors.Is(err, format.ErrCorruption):
		return damaged(err, "run "+cmdline(data, "verify")+" to list every fault with its file and offset")
	}
	return failed(err, "")
}

// notCreatedJSON is the --json output of create, merge and compact when
// there was nothing to do.
type notCreatedJSON struct {
	Created bool   `json:"created"` // always false
	Reason  string `json:"reason"`
	storeJSON
}

// checkpointCreatedJSON is the --json output of checkpoint create and
// delta merge.
type checkpointCreatedJSON struct {
	Created bool `json:"created"` // always true
	*client.CheckpointResult
	storeJSON
}

// printNothingToDo reports a maintenance step that had nothing to do. It is
// not a failure: the directory already is as asked.
func printNothingToDo(cCtx *cli.Context, err error) error {
	p := newPrinter(cCtx)
	if p.json {
		return p.JSON(notCreatedJSON{Created: false, Reason: reasonOf(err), storeJSON: p.store})
	}
	p.Notef("nothing to do: %s", reasonOf(err))
	return nil
}

// ---- checkpoint create ----

func checkpointCreateCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "create",
		Usage: "write a checkpoint of the current state and make it the base",
		Description: `Writes a checkpoint of the current state into DATA/snap and publishes a
manifest naming it as the base: the delta chain is folded away, and
recovery needs the WAL only after the checkpoint's index. WAL segments are
not dropped (kvtool wal compact does that). Prints the checkpoint: file,
index, keys, size and state hash. If the state is already checkpointed at
the applied index it prints "nothing to do" and exits 0.

` + maintTargetHelp + `

` + dryRunHelp + `

Examples:
  kvtool checkpoint create
  kvtool checkpoint create --dry-run
  kvtool checkpoint create --addr 127.0.0.1:7070 --json`,
		Flags: []cli.Flag{progressFlag(), addrFlag(), dryRunFlag()},
		Action: act(e, spec{scope: serverOrDir}, func(c *call) error {
			if c.Bool("dry-run") {
				return dryRun(c, planCheckpoint)
			}
			remote, local, err := maintain(c,
				func(ctx context.Context, c *client.Client) (*client.CheckpointResult, error) {
					return c.Checkpoint(ctx)
				},
				func(ctx context.Context, st *store.Store) (checkpoint.Info, error) { return st.Checkpoint(ctx) })
			return finishCheckpoint(c.Context, "checkpoint", remote, local, err)
		}),
	}
}

// finishCheckpoint prints the checkpoint a create or merge wrote.
func finishCheckpoint(cCtx *cli.Context, what string, remote *client.CheckpointResult, local checkpoint.Info, err error) error {
	switch {
	case nothingToDo(err):
		return printNothingToDo(cCtx, err)
	case err != nil:
		return maintError(cCtx, err)
	}
	res := remote
	if res == nil {
		res = server.CheckpointResult(local)
	}
	return printCheckpointWritten(newPrinter(cCtx), what, res)
}

func printCheckpointWritten(p *printer, what string, c *client.CheckpointResult) error {
	if p.json {
		return p.JSON(checkpointCreatedJSON{Created: true, CheckpointResult: c, storeJSON: p.store})
	}
	if p.quiet {
		_, err := fmt.Fprintln(p.w, c.Path)
		return writeErr(err)
	}
	p.Notef("%s written: %s at index %d: %s, %d bytes, state hash %s", what, c.Path, c.Index, plural(int(c.Keys), "key"), c.Size, c.StateHash)
	return nil
}

// ---- checkpoint list ----

func checkpointListCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "describe every checkpoint in DATA/snap, marking the manifest's base",
		Description: `Prints one row per checkpoint in DATA/snap, by index: file name, index, keys,
bytes, state hash, and its role: "base" for the one the manifest names,
"-" for the others (garbage that compaction removes). A checkpoint whose
header or footer cannot be read is listed with what is wrong. Reads only the
header and footer of each file (kvtool checkpoint verify reads them whole).

Examples:
  kvtool checkpoint list
  kvtool checkpoint list --json | jq -r '.checkpoints[] | select(.base) | .name'`,
		Action: snapListAction(e, checkpointFiles),
	}
}

// checkpointFiles is the checkpoint kind for list and verify.
var checkpointFiles = &snapKind{
	noun: checkpoint.Kind.Noun, magic: checkpoint.Kind.Magic, marked: "the base", maxFiles: 1,
	count: func(s *datadir.Snapshots) int { return len(s.Checkpoints) },
	listJSON: func(snapDir string, s *datadir.Snapshots) any {
		ckpts, _ := snapshotsJSON(s)
		return struct {
			SnapDir       string           `json:"snap_dir"`
			ManifestError string           `json:"manifest_error,omitempty"`
			Checkpoints   []checkpointJSON `json:"checkpoints"`
		}{snapDir, errText(s.ManifestErr), ckpts}
	},
	table: func(p *printer, s *datadir.Snapshots) error {
		return printCheckpointTable(p, s.Checkpoints, s.Manifest != nil)
	},
	verify: func(fsys vfs.FS, data, path string, opts datadir.VerifyOptions) (*datadir.Report, error) {
		if path != "" {
			return datadir.VerifyCheckpoint(fsys, path, opts)
		}
		return datadir.VerifyBase(fsys, data, opts)
	},
	state: checkpointState,
}

// checkpointJSON is a checkpoint in list and inspect output.
type checkpointJSON struct {
	Name      string `json:"name"`
	Path      string `json:"path"`
	StoreID   string `json:"store_id,omitempty"`
	Index     uint64 `json:"index"`
	Term      uint64 `json:"term"`
	Shards    int    `json:"shards"`
	Keys      uint64 `json:"keys"`
	Blocks    int    `json:"blocks"`
	Size      int64  `json:"size"`
	StateHash string `json:"state_hash,omitempty"`
	Checksum  string `json:"checksum,omitempty"`
	Base      bool   `json:"base"`
	Error     string `json:"error,omitempty"` // why the header or footer could not be read
}

func toCheckpointJSON(i checkpoint.Info, base bool) checkpointJSON {
	out := checkpointJSON{Name: i.Name, Path: i.Path, Base: base, Error: errorOf(i.Err)}
	if i.Err != nil {
		return out
	}
	out.StoreID, out.Index, out.Term, out.Shards = i.Meta.StoreID.String(), i.Meta.Index, i.Meta.Term, i.Meta.Shards
	out.Keys, out.Blocks, out.Size = i.Keys, i.Blocks, i.Size
	out.StateHash, out.Checksum = format.FormatStateHash(i.StateHash), hex16(i.Checksum)
	return out
}

// snapshotsJSON converts the checkpoints and deltas of s.
func snapshotsJSON(s *datadir.Snapshots) ([]checkpointJSON, []deltaJSON) {
	ckpts, deltas := []checkpointJSON{}, []deltaJSON{}
	for _, c := range s.Checkpoints {
		ckpts = append(ckpts, toCheckpointJSON(c.Info, c.Base))
	}
	for _, d := range s.Deltas {
		deltas = append(deltas, toDeltaJSON(d))
	}
	return ckpts, deltas
}

func printCheckpointTable(p *printer, ckpts []datadir.CheckpointFile, manifestKnown bool) error {
	t := p.Table("CHECKPOINT", "INDEX", "KEYS", "BYTES", "STATE HASH", "ROLE")
	for _, c := range ckpts {
		if c.Err != nil {
			t.Row(c.Name, "?", "?", "?", "?", "UNREADABLE: "+errorOf(c.Err))
			continue
		}
		t.Row(c.Name, c.Meta.Index, c.Keys, c.Size, format.FormatStateHash(c.StateHash), roleText(c.Base, manifestKnown, "base"))
	}
	return t.Flush()
}

// roleText is the ROLE column of a snapshot file: role if the manifest
// names it, else "-", or "unknown" when the manifest cannot be read.
func roleText(named, manifestKnown bool, role string) string {
	switch {
	case !manifestKnown:
		return "unknown (no readable manifest)"
	case named:
		return role
	}
	return "- (not in the manifest)"
}

// ---- checkpoint inspect ----

func checkpointInspectCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "print what a checkpoint file's header and footer say",
		ArgsUsage: "FILE",
		Description: `Prints the metadata of the checkpoint FILE from its header and footer: store
ID, applied index, term, shard count, keys, blocks, bytes, state hash and
whole-file checksum. FILE is a path, or the name of a file in DATA/snap.
Exits 3 if the header or footer is damaged. It does not read the blocks:
kvtool checkpoint verify FILE does.

Examples:
  kvtool checkpoint inspect 0000000000000400.ckpt
  kvtool checkpoint inspect --json /backups/pitr.ckpt`,
		Action: act(e, spec{min: 1, max: 1}, func(c *call) error {
			cCtx := c.Context
			data := globalsOf(cCtx).Data
			path := snapFile(e.fs, data, cCtx.Args().First())
			if err := checkKind(cCtx, e.fs, path, format.MagicCheckpoint); err != nil {
				return err
			}
			var info checkpoint.Info
			err := readOnly(cCtx, e, func(fsys vfs.FS) (err error) { info, err = checkpoint.ReadInfo(fsys, path); return err })
			if err != nil {
				return fileError(err, path, data)
			}
			return printCheckpointInfo(newPrinter(cCtx), info, isBase(e.fs, data, path))
		}),
	}
}

// snapFile resolves a FILE argument: a path that exists, else (for a bare
// name) the file of that name in DATA/snap, else the argument as given.
func snapFile(fsys vfs.FS, data, arg string) string {
	if _, err := fsys.Stat(arg); err == nil || strings.ContainsRune(arg, filepath.Separator) || data == "" {
		return arg
	}
	if p := filepath.Join(data, format.SnapDir, arg); statOK(fsys, p) {
		return p
	}
	return arg
}

func statOK(fsys vfs.FS, path string) bool {
	_, err := fsys.Stat(path)
	return err == nil
}

// fileError gives a failure to read a FILE argument its exit code.
func fileError(err error, path, data string) error {
	if vfs.IsNotExist(err) {
		return failed(fmt.Errorf("no such file: %s", path), "give a path, or the name of a file in "+filepath.Join(data, format.SnapDir))
	}
	if format.AsCorruption(err) != nil {
		return damaged(err, "the file is damaged; run kvtool checkpoint verify "+shellQuote(path)+" to list every problem")
	}
	return failed(err, "")
}

// isBase reports whether path is the base checkpoint the manifest of data
// names (as checkpoint list marks it).
func isBase(fsys vfs.FS, data, path string) bool {
	if data == "" {
		return false
	}
	m, err := manifest.Load(fsys, data)
	if err != nil || m.Base == nil {
		return false
	}
	return sameFile(fsys, path, filepath.Join(data, format.SnapDir, m.Base.Name))
}

// sameFile reports whether a and b name the same existing file.
func sameFile(fsys vfs.FS, a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return statOK(fsys, a)
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

func printCheckpointInfo(p *printer, i checkpoint.Info, base bool) error {
	if p.json {
		return p.JSON(toCheckpointJSON(i, base))
	}
	t := p.Table("file", i.Path)
	t.Row("store", i.Meta.StoreID)
	t.Row("index", i.Meta.Index)
	t.Row("term", i.Meta.Term)
	t.Row("shards", i.Meta.Shards)
	t.Row("keys", i.Keys)
	t.Row("blocks", i.Blocks)
	t.Row("bytes", i.Size)
	t.Row("state hash", format.FormatStateHash(i.StateHash))
	t.Row("checksum", hex16(i.Checksum))
	t.Row("role", roleText(base, true, "base (the manifest's)"))
	return t.Flush()
}

// ---- checkpoint verify ----

func checkpointVerifyCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check every byte of a checkpoint (default: the manifest's base); exit 3 on problems",
		ArgsUsage: "[FILE]",
		Description: `Reads the whole checkpoint and checks its header, every block checksum and
encoding, key order, the index, the footer, the whole-file checksum and the
state hash recomputed from the blocks. Without FILE it verifies the base the
manifest names, and also that it is the file the manifest recorded (size,
index, checksum). FILE is a path (a point-in-time kvtool replay --out file,
a copy) or the name of a file in DATA/snap.

Prints every problem (file, offset, kind, reason), then a count; exits 3 if
there is any. Reads only; changes nothing.

Examples:
  kvtool checkpoint verify
  kvtool checkpoint verify --json /backups/pitr.ckpt`,
		Flags:  []cli.Flag{progressFlag()},
		Action: snapVerifyAction(e, checkpointFiles),
	}
}

// checkpointState is the applied index and state hash of the checkpoint a
// verify checked (path, or the manifest's base), from its footer; nil and
// "" when it holds no readable checkpoint.
func checkpointState(fsys vfs.FS, data, path string, rep *datadir.Report) (*uint64, string) {
	if path == "" {
		if rep.Manifest == nil || rep.Manifest.Base == nil {
			return nil, ""
		}
		path = filepath.Join(data, format.SnapDir, rep.Manifest.Base.Name)
	}
	info, err := checkpoint.ReadInfo(fsys, path)
	if err != nil {
		return nil, ""
	}
	return &info.Meta.Index, format.FormatStateHash(info.StateHash)
}

// ---- wal compact ----

// walCompactCommand is `kvtool wal compact` (listed in walCommand).
func walCompactCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "compact",
		Usage: "checkpoint the state, then drop the WAL segments and files the manifest no longer needs",
		Description: `Writes a checkpoint at the applied index (unless the state already is
checkpointed there) and publishes a manifest naming it as the base, then
removes the WAL segments wholly before the manifest's first needed index and
the checkpoints, deltas and temporary files in DATA/snap that the manifest
does not name. What a snapshot transfer in progress still needs (its lease)
is kept. Prints the checkpoint written, the new first WAL index needed, and
every segment and file removed.

` + maintTargetHelp + `

` + dryRunHelp + `

Examples:
  kvtool wal compact
  kvtool wal compact --dry-run
  kvtool wal compact --addr 127.0.0.1:7070 --json`,
		Flags: []cli.Flag{progressFlag(), addrFlag(), dryRunFlag()},
		Action: act(e, spec{scope: serverOrDir}, func(c *call) error {
			if c.Bool("dry-run") {
				return dryRun(c, planCompact)
			}
			remote, local, err := maintain(c,
				func(ctx context.Context, c *client.Client) (*client.CompactResult, error) { return c.Compact(ctx) },
				func(ctx context.Context, st *store.Store) (store.CompactResult, error) { return st.Compact(ctx) })
			if err != nil {
				return maintError(c.Context, err)
			}
			if remote == nil {
				remote = server.CompactResult(local)
			}
			return printCompact(newPrinter(c.Context), remote)
		}),
	}
}

func printCompact(p *printer, r *client.CompactResult) error {
	if p.json {
		return p.JSON(struct {
			*client.CompactResult
			storeJSON
		}{r, p.store})
	}
	var b strings.Builder
	if c := r.Checkpoint; c != nil {
		fmt.Fprintf(&b, "checkpoint written: %s at index %d: %s, %d bytes, state hash %s\n", c.Path, c.Index, plural(int(c.Keys), "key"), c.Size, c.StateHash)
	} else {
		fmt.Fprintf(&b, "no checkpoint written: the state is already checkpointed at the applied index\n")
	}
	fmt.Fprintf(&b, "the WAL is needed from index %d\n", r.WALFirstIndex)
	for _, s := range r.DroppedSegments {
		fmt.Fprintf(&b, "dropped segment %s\n", s)
	}
	for _, f := range r.RemovedFiles {
		fmt.Fprintf(&b, "removed %s\n", f)
	}
	if _, err := fmt.Fprint(p.w, b.String()); err != nil {
		return writeErr(err)
	}
	p.Notef("%s dropped, %s removed", plural(len(r.DroppedSegments), "segment"), plural(len(r.RemovedFiles), "file"))
	return nil
}
