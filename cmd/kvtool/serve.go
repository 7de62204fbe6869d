package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

func serveCommand(e env) *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the store and its HTTP API",
		Description: `Opens the data directory, recovers its state from the write-ahead log, and
serves the HTTP API on --listen until SIGINT or SIGTERM. Shutdown stops
accepting connections, lets requests in flight finish and maintenance stop
at a safe point (up to --shutdown-timeout), then closes the log; a second
SIGINT stops at once.

A new store is created only in a missing or empty directory whose parent
exists: a directory holding other files is refused, so a typo in --data
never starts an empty store beside other data.

It checks every flag, opens the data directory and binds every listener
before it prints anything; then it prints the address it listens on (with
--json, one JSON line {"event": "listening", "listen_addr", "data_dir",
"applied_index", ...}), so --listen 127.0.0.1:0 picks a free port that a
script can read back. Logs go to standard error.

HTTP API (see the README): GET/PUT/DELETE /v1/kv/{key}, POST /v1/txn,
GET /v1/scan, GET /v1/status, GET /v1/hash, GET /metrics, and the
maintenance endpoints POST /v1/admin/rotate, /v1/admin/checkpoint,
/v1/admin/delta, /v1/admin/merge and /v1/admin/compact.

Maintenance also runs on its own: a delta every --delta-every when keys
changed, a merge once --merge-after deltas (or --merge-after-size bytes)
pile up, and compaction (checkpoint, then drop old WAL segments) once the
WAL passes --compact-wal-size. Readers and writers keep going throughout.

--shards applies only when the directory is created; an existing directory
keeps its shard count.

` + serveTransferHelp + `

Examples:
  kvtool serve --data /srv/kv
  kvtool serve --listen 127.0.0.1:0 --json --segment-size 16MiB
  kvtool serve --data /srv/kv --transfer-listen 0.0.0.0:7071 --secret-file secret
  kvtool serve --data /srv/replica --join source:7071 --secret-file secret`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:7070", Usage: "serve HTTP on `HOST:PORT` (port 0: any free port)"},
			&cli.IntFlag{Name: "shards", Value: store.DefaultShards, Usage: "shard count `N` of a new data directory"},
			newSizeFlag("segment-size", "rotate WAL segments at `SIZE` (default: the size the directory was created with, 64MiB for a new one)", segment.DefaultSegmentSize),
			&cli.DurationFlag{Name: "delta-every", Value: time.Minute, Usage: "take an incremental delta snapshot every `DURATION` when keys changed (0: never)"},
			&cli.IntFlag{Name: "merge-after", Value: 8, Usage: "merge the deltas into a new base checkpoint once there are `N` of them (0: never)"},
			newSizeFlag("merge-after-size", "merge the deltas once they add up to `SIZE` (0: no size rule)", 256<<20),
			newSizeFlag("compact-wal-size", "checkpoint and drop old WAL segments once the WAL holds `SIZE` (0: never)", 1<<30),
			newSizeFlag("maintenance-rate", "write checkpoints, deltas and merges at most `RATE` bytes/s, on one core, so readers and writers keep the machine (0: full speed)", 32<<20),
			&cli.DurationFlag{Name: "shutdown-timeout", Value: server.DefaultShutdownTimeout, Usage: "let requests in flight finish for up to `DURATION` on shutdown"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log `LEVEL`: debug (every request), info, warn or error"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log `FORMAT`: text or json"},
		}, transferServeFlags()...),
		Action: func(cCtx *cli.Context) error {
			if err := wantArgs(cCtx, 0, 0); err != nil {
				return err
			}
			opts, err := serveOptionsOf(cCtx)
			if err != nil {
				return err
			}
			ts, err := transferServeOf(cCtx)
			if err != nil {
				return err
			}
			if cCtx.IsSet("join") {
				return serveJoin(cCtx, e, opts, ts)
			}
			return serve(cCtx, e, opts, ts)
		},
	}
}

// serveOptions are the flags of `serve`.
type serveOptions struct {
	data            string
	dataFrom        setting
	listen          string
	shards          int
	segmentSize     int64 // 0: the directory's own
	shutdownTimeout time.Duration
	logger          *slog.Logger
	maintenance     store.MaintenancePolicy
	maintenanceRate int64
}

func serveOptionsOf(cCtx *cli.Context) (serveOptions, error) {
	data, err := dataDir(cCtx)
	if err != nil {
		return serveOptions{}, err
	}
	o := serveOptions{
		data: data, dataFrom: dataSetting(cCtx), listen: cCtx.String("listen"), shards: cCtx.Int("shards"),
		shutdownTimeout: cCtx.Duration("shutdown-timeout"),
		maintenance: store.MaintenancePolicy{
			DeltaEvery: cCtx.Duration("delta-every"), MergeAfterDeltas: cCtx.Int("merge-after"),
			MergeAfterBytes: sizeFlag(cCtx, "merge-after-size"), CompactWALBytes: sizeFlag(cCtx, "compact-wal-size"),
		},
	}
	if cCtx.IsSet("segment-size") {
		o.segmentSize = sizeFlag(cCtx, "segment-size")
	}
	o.maintenanceRate = sizeFlag(cCtx, "maintenance-rate")
	switch {
	case o.shards < 1 || o.shards > 4096:
		return o, usageErrorf(cCtx, "--shards must be between 1 and 4096")
	case o.maintenance.DeltaEvery < 0 || o.maintenance.MergeAfterDeltas < 0:
		return o, usageErrorf(cCtx, "--delta-every and --merge-after must not be negative")
	case cCtx.IsSet("segment-size") && o.segmentSize < 64<<10:
		return o, usageErrorf(cCtx, "--segment-size must be at least 64KiB")
	case o.shutdownTimeout <= 0:
		return o, usageErrorf(cCtx, "--shutdown-timeout must be more than 0")
	}
	if err := checkHostPort(cCtx, "listen", o.listen); err != nil {
		return o, err
	}
	if j := cCtx.String("join"); cCtx.IsSet("join") {
		if err := checkHostPort(cCtx, "join", j); err != nil {
			return o, err
		}
	}
	o.logger, err = newLogger(cCtx.App.ErrWriter, cCtx.String("log-level"), cCtx.String("log-format"))
	if err != nil {
		return o, usageErrorf(cCtx, "%v", err)
	}
	return o, nil
}

// newLogger returns the server's structured logger, writing to w.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// serve runs the store and its API until the command's context is
// cancelled (SIGINT, SIGTERM), then closes the store. Every flag is checked
// (serveOptionsOf, transferServeOf), the directory checked and every
// listener bound before the store is opened or created, and the store
// opened before anything is announced: a server that prints its address
// serves there.
func serve(cCtx *cli.Context, e env, o serveOptions, ts *transferServe) error {
	if err := checkCreate(e.fs, o.dataFrom); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return listenError("--listen", o.listen, err)
	}
	defer ln.Close()
	if err := ts.bind(); err != nil {
		return err
	}
	defer ts.close()
	st, err := store.Open(store.Options{FS: e.fs, Dir: o.data, Create: true, Shards: o.shards, SegmentSize: o.segmentSize,
		MaintenanceRate: o.maintenanceRate})
	if err != nil {
		return openError(err, o.data)
	}
	if err := announce(cCtx, st, o, ln.Addr().String()); err != nil {
		st.Close()
		return err
	}
	if err := ts.announce(cCtx); err != nil {
		st.Close()
		return err
	}
	srv := server.New(st, server.Options{Logger: o.logger})
	h, stopTransfers := ts.start(cCtx.Context, e, st, srv, logger{o.logger})
	stopMaint := startMaintenance(cCtx.Context, st, o.maintenance, srv.ReportMaintenance, o.logger)
	runErr := server.Run(cCtx.Context, ln, h, server.RunOptions{Logger: o.logger, ShutdownTimeout: o.shutdownTimeout})
	stopTransfers()
	stopMaint()
	applied := st.Snapshot().Index()
	if err := st.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close the store: %w", err)
	}
	if runErr != nil {
		return failed(runErr, "")
	}
	o.logger.Info("stopped", "applied_index", applied)
	return printStopped(cCtx, applied)
}

// listenError explains a failure to listen on addr (the value of flag).
func listenError(flag, addr string, err error) error {
	hint := "choose another address with " + flag
	if errors.Is(err, syscall.EADDRINUSE) {
		hint = "another process uses the port (another kvtool serve?); stop it, or " + hint
	}
	return failed(fmt.Errorf("listen on %s (%s): %w", addr, flag, inner(err)), hint)
}

// listeningJSON is the first line serve prints with --json.
type listeningJSON struct {
	Event        string `json:"event"`
	ListenAddr   string `json:"listen_addr"`
	DataDir      string `json:"data_dir"`
	StoreID      string `json:"store_id"`
	AppliedIndex uint64 `json:"applied_index"`
	Shards       int    `json:"shards"`
}

// announce logs and prints where the server listens, and what open found.
func announce(cCtx *cli.Context, st *store.Store, o serveOptions, addr string) error {
	snap, man := st.Snapshot(), st.CurrentManifest()
	if cCtx.IsSet("shards") && man.Shards != o.shards {
		o.logger.Warn("--shards ignored: the data directory already has its shard count", "shards", man.Shards, "flag", o.shards)
	}
	if cut := st.Log().TailCut(); cut != nil {
		o.logger.Warn("cut a torn tail of the WAL at open", "segment", cut.Path, "offset", cut.Offset,
			"bytes", cut.Bytes, "quarantine", cut.QuarantinePath)
	}
	o.logger.Info("listening", "addr", addr, "data_dir", st.Dir(), "applied_index", snap.Index(), "shards", man.Shards)
	p := newPrinter(cCtx)
	if p.json {
		return p.JSONLine(listeningJSON{Event: "listening", ListenAddr: addr, DataDir: st.Dir(),
			StoreID: man.StoreID.String(), AppliedIndex: snap.Index(), Shards: man.Shards})
	}
	_, err := fmt.Fprintf(p.w, "serving %s on http://%s (applied index %d, %d shards)\n", st.Dir(), addr, snap.Index(), man.Shards)
	return writeErr(err)
}

// stoppedJSON is the last line serve prints with --json.
type stoppedJSON struct {
	Event        string `json:"event"`
	AppliedIndex uint64 `json:"applied_index"`
}

func printStopped(cCtx *cli.Context, applied uint64) error {
	p := newPrinter(cCtx)
	if p.json {
		return p.JSONLine(stoppedJSON{Event: "stopped", AppliedIndex: applied})
	}
	p.Notef("stopped cleanly at applied index %d", applied)
	return nil
}

// startMaintenance runs the store's automatic deltas, merges and compaction
// beside the server; the returned func stops it: the step in progress, if
// any, stops at its next safe point (between two blocks of the file it
// writes, which is then removed; the manifest is untouched), and the
// function waits for that, saying so, so the store is closed only after.
func startMaintenance(ctx context.Context, st *store.Store, p store.MaintenancePolicy, report func(store.MaintenanceEvent), log *slog.Logger) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var (
		mu     sync.Mutex
		step   string // the step running, "" between steps
		waited bool   // "waiting for" was logged
	)
	waiting := func() { // with mu held
		if step != "" && !waited {
			log.Info("waiting for maintenance to stop at a safe point", "kind", step)
			waited = true
		}
	}
	p.Running = func(kind string) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case kind != "":
			log.Debug("maintenance started", "kind", kind)
		case ctx.Err() != nil:
			waiting() // the step may notice the end before AfterFunc runs
			log.Info("maintenance stopped at a safe point", "kind", step)
		}
		step = kind
	}
	stopping := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		waiting()
	})
	go func() {
		defer close(done)
		st.RunMaintenance(ctx, p, report)
	}()
	return func() {
		cancel()
		<-done
		stopping()
	}
}
