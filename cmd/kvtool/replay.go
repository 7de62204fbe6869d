package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/replay"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/vfs"
)

// replayCommand is `kvtool replay`: rebuild the state offline.
func replayCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "replay",
		Usage: "rebuild the state at an index from base, deltas and WAL; print its hash; optionally write it",
		Description: `Rebuilds the state exactly as recovery does — the manifest's base
checkpoint, then its deltas, then the WAL tail — up to --to-index (default:
everything durable; a torn tail is never acknowledged and is left out), in
memory, and prints the applied index and the state hash, with the key count
and what was applied. Two data directories hold the same state exactly when
their state hashes match.

--to-index N rebuilds the state as it was right after entry N, for any N
the retained files cover: from the base's index through the end of the WAL
(compaction drops older history). An N outside them exits 1 and says which
indexes are covered.

--out FILE writes the rebuilt state as a checkpoint file (point-in-time
recovery); kvtool checkpoint verify FILE checks it. An existing FILE is
refused unless --force.

Reads the data directory only; never creates, locks or changes a file in it.
The whole state is held in memory.

Examples:
  kvtool replay
  kvtool replay --to-index 1200 --json | jq -r .state_hash
  kvtool replay --to-index 1200 --out /backups/state-1200.ckpt`,
		Flags: []cli.Flag{
			progressFlag(),
			&cli.Uint64Flag{Name: "to-index", Usage: "rebuild the state at log `INDEX`", DefaultText: "the last durable index"},
			&cli.StringFlag{Name: "out", Usage: "write the state as a checkpoint to `FILE`"},
			&cli.BoolFlag{Name: "force", Usage: "with --out, replace an existing FILE", DisableDefaultText: true},
		},
		// replayDir says itself what an interruption left behind.
		Action: action(e, spec{scope: readDir, ownInterrupt: true}, replayOptionsOf, func(c *call, o datadir.ReplayOptions) error {
			return replayDir(c.Context, c.fs, c.data(), o)
		}),
	}
}

func replayOptionsOf(cCtx *cli.Context) (datadir.ReplayOptions, error) {
	o := datadir.ReplayOptions{ToIndex: cCtx.Uint64("to-index"), Out: cCtx.String("out"), Overwrite: cCtx.Bool("force")}
	switch {
	case cCtx.IsSet("to-index") && o.ToIndex == 0:
		return o, usageErrorf(cCtx, "--to-index 0: log indexes start at 1")
	case cCtx.IsSet("out") && o.Out == "":
		return o, usageErrorf(cCtx, "--out is empty (is a shell variable unset?)")
	}
	return o, nil
}

func replayDir(cCtx *cli.Context, fsys vfs.FS, data string, opts datadir.ReplayOptions) error {
	read, write := dirWork(fsys, data)
	if opts.Out == "" {
		write = 0
	}
	pfs, ip := startIOProgress(cCtx, "replay", fsys, read+write)
	res, err := datadir.Replay(pfs, data, opts)
	ip.Done()
	if err != nil || opts.Out == "" {
		// Without --out a cancelled replay's result rests on failed reads;
		// with it, the file is published whole or not at all.
		if s := stopped(cCtx, outLeft(opts.Out)); s != nil {
			return s
		}
	}
	if err != nil {
		return replayError(cCtx, fsys, data, opts, err)
	}
	return printReplay(newPrinter(cCtx), res)
}

// outLeft says what an interrupted replay left behind.
func outLeft(out string) string {
	if out == "" {
		return "it changed nothing"
	}
	return "nothing was written to " + out
}

// replayError gives a failed replay its exit code and a hint; an index the
// files do not cover says which ones they do.
func replayError(cCtx *cli.Context, fsys vfs.FS, data string, opts datadir.ReplayOptions, err error) error {
	switch {
	case errors.Is(err, replay.ErrNotCovered), errors.Is(err, replay.ErrGap):
		hint := "the retained files do not say which indexes they cover; run " + cmdline(data, "verify")
		if rs, cerr := datadir.Covered(fsys, data); cerr == nil {
			hint = "the retained files cover " + datadir.RangesText(rs) + "; choose --to-index among them"
		}
		return failed(fmt.Errorf("replay to index %d: %w", opts.ToIndex, err), hint)
	case errors.Is(err, datadir.ErrExists):
		return failed(err, "choose another --out FILE, or add --force to replace it")
	case errors.Is(err, datadir.ErrOutName):
		return usageErrorf(cCtx, "%v", err)
	}
	return dirError(err, data)
}

// replayJSON is the document `replay --json` prints.
type replayJSON struct {
	AppliedIndex uint64                   `json:"applied_index"`
	StateHash    string                   `json:"state_hash"`
	Keys         int                      `json:"keys"`
	Base         string                   `json:"base"`
	BaseIndex    uint64                   `json:"base_index"`
	Deltas       []string                 `json:"deltas"`
	WALFrom      uint64                   `json:"wal_from"`
	WALRecords   int64                    `json:"wal_records"`
	TornTail     bool                     `json:"torn_tail"`
	Out          *client.CheckpointResult `json:"out,omitempty"`
}

func printReplay(p *printer, res *datadir.ReplayResult) error {
	if p.json {
		out := replayJSON{AppliedIndex: res.AppliedIndex, StateHash: format.FormatStateHash(res.StateHash), Keys: res.Keys,
			Base: res.Base, BaseIndex: res.BaseIndex, Deltas: res.Deltas, WALFrom: res.WALFrom,
			WALRecords: res.WALRecords, TornTail: res.TornTail}
		if out.Deltas == nil {
			out.Deltas = []string{}
		}
		if res.Out != nil {
			out.Out = server.CheckpointResult(*res.Out)
		}
		return p.JSON(out)
	}
	t := p.Table("applied index", fmt.Sprint(res.AppliedIndex))
	t.Row("state hash", format.FormatStateHash(res.StateHash))
	t.Row("keys", res.Keys)
	t.Row("base", replayBaseText(res.State))
	t.Row("deltas", replayDeltasText(res.State))
	t.Row("WAL", replayWALText(res.State))
	if res.TornTail {
		t.Row("torn tail", "the WAL ends in a torn record (never acknowledged); replay stopped before it")
	}
	if o := res.Out; o != nil {
		t.Row("written", fmt.Sprintf("%s (checkpoint at index %d, %d bytes)", o.Path, o.Meta.Index, o.Size))
	}
	return t.Flush()
}

func replayBaseText(s datadir.State) string {
	if s.Base == "" {
		return "none (started from the empty state)"
	}
	return fmt.Sprintf("%s (index %d)", s.Base, s.BaseIndex)
}

func replayDeltasText(s datadir.State) string {
	if len(s.Deltas) == 0 {
		return "none"
	}
	return fmt.Sprintf("%s, last %s", plural(len(s.Deltas), "delta"), s.Deltas[len(s.Deltas)-1])
}

func replayWALText(s datadir.State) string {
	if s.WALRecords == 0 {
		return "no records"
	}
	return fmt.Sprintf("%s, indexes %d to %d", plural(int(s.WALRecords), "record"), s.WALFrom, s.AppliedIndex)
}
