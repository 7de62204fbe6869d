package main

import (
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

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/node"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
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
"applied_index", ..., and for a cluster member "node" and "peer_addr"}), so --listen 127.0.0.1:0 picks a free port that a
script can read back. Logs go to standard error.

HTTP API (see the README): GET/PUT/DELETE /v1/kv/{key}, POST /v1/txn,
GET /v1/scan, GET /v1/status, GET /v1/hash, GET /metrics, and the
maintenance endpoints POST /v1/admin/rotate, /v1/admin/checkpoint,
/v1/admin/delta, /v1/admin/merge and /v1/admin/compact.

--debug-listen 127.0.0.1:PORT serves Go's profiles (net/http/pprof:
/debug/pprof/profile?seconds=N for CPU, heap, allocs, goroutine, mutex,
block, trace) on a listener of their own, loopback only unless
--debug-listen-any; e.g. go tool pprof http://127.0.0.1:PORT/debug/pprof/profile?seconds=10

Maintenance also runs on its own: a delta every --delta-every when keys
changed, a merge once --merge-after deltas (or --merge-after-size bytes)
pile up, and compaction (checkpoint, then drop old WAL segments) once the
WAL passes --compact-wal-size. Readers and writers keep going throughout.

Unless GOGC or GOMEMLIMIT is set, serve runs Go's garbage collector at
GOGC=400 under a soft memory limit of half the machine's (or cgroup's)
memory: puts allocate much short-lived memory, and the default collector
took CPU from requests.

--shards applies only when the directory is created; an existing directory
keeps its shard count.

` + serveTransferHelp + `

` + serveClusterHelp + `

Examples:
  kvtool serve --data /srv/kv
  kvtool serve --listen 127.0.0.1:0 --json --segment-size 16MiB
  kvtool serve --data /srv/kv --transfer-listen 0.0.0.0:7071 --secret-file secret
  kvtool serve --data /srv/replica --join source:7071 --secret-file secret
  kvtool serve --data /srv/n1 --node n1 --listen 127.0.0.1:7070 --peer-listen 127.0.0.1:7080 \
      --cluster n1=127.0.0.1:7080,n2=127.0.0.1:7081,n3=127.0.0.1:7082 --secret-file secret`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:7070", Usage: "serve HTTP on `HOST:PORT` (port 0: any free port)"},
			&cli.IntFlag{Name: "shards", Value: store.DefaultShards, Usage: "shard count `N` of a new data directory"},
			newSizeFlag("segment-size", "rotate WAL segments at `SIZE` (default: the size the directory was created with, 64MiB for a new one)", segment.DefaultSegmentSize),
			&cli.DurationFlag{Name: "delta-every", Value: time.Minute, Usage: "take an incremental delta snapshot every `DURATION` when keys changed (0: never)"},
			&cli.IntFlag{Name: "merge-after", Value: 8, Usage: "merge the deltas into a new base checkpoint once there are `N` of them (0: never)"},
			newSizeFlag("merge-after-size", "merge the deltas once they add up to `SIZE` (0: no size rule)", 256<<20),
			newSizeFlag("compact-wal-size", "checkpoint and drop old WAL segments once the WAL holds `SIZE` (0: never)", 1<<30),
			newSizeFlag("maintenance-rate", "write checkpoints, deltas and merges at most `RATE` bytes/s, on one core, so readers and writers keep the machine (0: full speed)", 32<<20),
			&cli.Float64Flag{Name: "maintenance-share", Value: store.DefaultMaintenanceShare, Usage: "with --maintenance-rate, let maintenance work at most this `SHARE` of the time (0.05 to 1; 1: paced by bytes only), so a busy machine's writers keep their commits"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: server.DefaultShutdownTimeout, Usage: "let requests in flight finish for up to `DURATION` on shutdown"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log `LEVEL`: debug (every request), info, warn or error"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log `FORMAT`: text or json"},
			&cli.StringFlag{Name: "debug-listen", Usage: "serve Go's profiles (pprof) under /debug/pprof/ on `HOST:PORT`, a loopback address (port 0: any free port)"},
			&cli.BoolFlag{Name: "debug-listen-any", Usage: "let --debug-listen bind an address other than loopback (the profiles show the process's memory and cost CPU: keep them off the network)"},
		}, append(transferServeFlags(), clusterServeFlags()...)...),
		Action: action(e, spec{scope: anyDir}, serveOptionsOf, func(c *call, o serveOptions) error {
			o.cfg.Dir, o.cfg.FS = c.data(), c.fs
			return serve(c.Context, o)
		}),
	}
}

// serveOptions are the flags of `serve`: the node's configuration, and
// where --data came from (for the checks before anything is created).
type serveOptions struct {
	cfg      node.Config
	dataFrom setting
}

// serveOptionsOf checks every flag of serve and turns them into a node's
// configuration; it opens nothing.
func serveOptionsOf(cCtx *cli.Context) (serveOptions, error) {
	o := serveOptions{dataFrom: dataSetting(cCtx), cfg: node.Config{
		Listen: cCtx.String("listen"), ShutdownTimeout: cCtx.Duration("shutdown-timeout"),
		MaintenanceRate: sizeFlag(cCtx, "maintenance-rate"), MaintenanceShare: cCtx.Float64("maintenance-share"),
		Maintenance: store.MaintenancePolicy{
			DeltaEvery: cCtx.Duration("delta-every"), MergeAfterDeltas: cCtx.Int("merge-after"),
			MergeAfterBytes: sizeFlag(cCtx, "merge-after-size"), CompactWALBytes: sizeFlag(cCtx, "compact-wal-size"),
		},
	}}
	if err := checkServeFlags(cCtx, &o.cfg); err != nil {
		return o, err
	}
	var err error
	o.cfg.Logger, err = newLogger(cCtx.App.ErrWriter, cCtx.String("log-level"), cCtx.String("log-format"))
	if err != nil {
		return o, usageErrorf(cCtx, "%v", err)
	}
	if err := clusterServeOf(cCtx, &o.cfg); err != nil {
		return o, err
	}
	if err := transferServeOf(cCtx, &o.cfg); err != nil {
		return o, err
	}
	if o.cfg.Cluster != nil && o.cfg.Secret.IsZero() {
		o.cfg.Secret, err = loadSecret(cCtx, true)
	}
	return o, err
}

// checkServeFlags checks the store's and the API's flags, and sets the
// shard count and segment size asked for (0: the defaults).
func checkServeFlags(cCtx *cli.Context, cfg *node.Config) error {
	shards := cCtx.Int("shards")
	m := cfg.Maintenance
	switch {
	case shards < 1 || shards > 4096:
		return usageErrorf(cCtx, "--shards must be between 1 and 4096")
	case m.DeltaEvery < 0 || m.MergeAfterDeltas < 0:
		return usageErrorf(cCtx, "--delta-every and --merge-after must not be negative")
	case cCtx.IsSet("segment-size") && sizeFlag(cCtx, "segment-size") < 64<<10:
		return usageErrorf(cCtx, "--segment-size must be at least 64KiB")
	case cfg.ShutdownTimeout <= 0:
		return usageErrorf(cCtx, "--shutdown-timeout must be more than 0")
	case !(cfg.MaintenanceShare >= 0.05 && cfg.MaintenanceShare <= 1):
		return usageErrorf(cCtx, "--maintenance-share must be between 0.05 and 1 (1: maintenance paced by --maintenance-rate alone), not %v", cfg.MaintenanceShare)
	}
	if cCtx.IsSet("shards") {
		cfg.Shards = shards
	}
	if cCtx.IsSet("segment-size") {
		cfg.SegmentSize = sizeFlag(cCtx, "segment-size")
	}
	if err := checkHostPort(cCtx, "listen", cfg.Listen); err != nil {
		return err
	}
	if err := checkDebugListen(cCtx, cfg); err != nil {
		return err
	}
	if j := cCtx.String("join"); cCtx.IsSet("join") {
		return checkHostPort(cCtx, "join", j)
	}
	return nil
}

// checkDebugListen checks --debug-listen into cfg: HOST:PORT, and a
// loopback host (127.0.0.1, ::1, localhost) unless --debug-listen-any.
func checkDebugListen(cCtx *cli.Context, cfg *node.Config) error {
	addr := cCtx.String("debug-listen")
	if !cCtx.IsSet("debug-listen") {
		return nil
	}
	if err := checkHostPort(cCtx, "debug-listen", addr); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	if !cCtx.Bool("debug-listen-any") && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return usageErrorf(cCtx, "--debug-listen %s is not a loopback address: the profiles show the process's memory; use 127.0.0.1:PORT (or add --debug-listen-any)", addr)
	}
	cfg.DebugListen = addr
	return nil
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

// serve runs the node until the command's context is cancelled (SIGINT,
// SIGTERM). Every flag is checked (serveOptionsOf) and the directory
// checked before node.Run binds every listener and opens the store; only
// then does it announce the node (Events.Listening): a server that prints
// its address serves there.
func serve(cCtx *cli.Context, o serveOptions) error {
	if err := checkServeDir(o.cfg.FS, o); err != nil {
		return err
	}
	var applied uint64
	o.cfg.Events = node.Events{
		Listening: func(l node.Listening) error { return announce(cCtx, l) },
		Stopped:   func(i uint64) { applied = i },
	}
	if o.cfg.Join != "" {
		pr := startTransferProgress(cCtx, "join")
		var once sync.Once
		done := func() { once.Do(pr.Done) }
		defer done()
		o.cfg.Events.JoinProgress, o.cfg.Events.CutOver = pr.update, func() { go done() }
	}
	server.TuneGC()
	if err := node.Run(cCtx.Context, o.cfg); err != nil {
		return serveError(err, o)
	}
	return printStopped(cCtx, applied)
}

// checkServeDir checks, before anything is created, that a store may be
// created or opened at --data (checkCreate); a joining node only needs
// the directory's parent: what it receives decides the rest.
func checkServeDir(fsys vfs.FS, o serveOptions) error {
	if o.cfg.Join == "" {
		return checkCreate(fsys, o.dataFrom)
	}
	if st, err := statDataDir(fsys, o.cfg.Dir); err == nil && st == dirNoParent {
		return checkCreate(fsys, o.dataFrom)
	}
	return nil
}

// serveError gives the failure of a node's part its exit code and hint.
func serveError(err error, o serveOptions) error {
	var ne *node.Error
	if !errors.As(err, &ne) {
		return failed(err, "") // the announcement's own error is an *exitError already
	}
	switch {
	case ne.Op == node.OpListen && ne.Part == node.PartPeers:
		return clusterListenError(ne)
	case ne.Part == node.PartCluster:
		return memberError(ne, o.cfg.Dir)
	case ne.Part == node.PartJoin && o.cfg.Cluster != nil && format.AsCorruption(ne.Err) != nil:
		return damaged(fmt.Errorf("join the cluster: %w", ne.Err), rebuildMemberHint(o.cfg.Dir))
	case ne.Part == node.PartJoin && o.cfg.Cluster != nil:
		return failed(fmt.Errorf("join the cluster: %w", ne.Err),
			"check --join-cluster (the HTTP API of a member), the shared secret and --peer-listen; starting again with the same --data resumes the join")
	case ne.Op == node.OpListen && ne.Part == node.PartTransfers:
		return listenError("--transfer-listen", ne.Addr, ne.Err)
	case ne.Op == node.OpListen && ne.Part == node.PartDebug:
		return listenError("--debug-listen", ne.Addr, ne.Err)
	case ne.Op == node.OpListen:
		return listenError("--listen", ne.Addr, ne.Err)
	case ne.Op == node.OpOpen:
		return openError(ne.Err, o.cfg.Dir)
	case ne.Part == node.PartJoin:
		return joinError(ne.Err)
	}
	return failed(ne.Err, "")
}

// joinError explains a join that retrying cannot mend.
func joinError(err error) error {
	var wp *node.WrongPeerError
	if errors.As(err, &wp) {
		return failed(fmt.Errorf("%s; --join needs the source's --transfer-listen address", wp.What),
			"retrying cannot help: start the source with --transfer-listen HOST:PORT and give that address to --join")
	}
	return failed(err, "retrying cannot help: check the secret, the --join address (a --transfer-listen port) and the data directory, then start the node again")
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
	Node         string `json:"node,omitempty"`       // a cluster member's name
	PeerAddr     string `json:"peer_addr,omitempty"`  // a cluster member's peer listener
	DebugAddr    string `json:"debug_addr,omitempty"` // the --debug-listen listener
}

// announce prints where the node listens and what open found: the API,
// then the transfer listener.
func announce(cCtx *cli.Context, l node.Listening) error {
	p := newPrinter(cCtx)
	if p.json {
		err := p.JSONLine(listeningJSON{Event: "listening", ListenAddr: l.APIAddr, DataDir: l.DataDir,
			StoreID: l.StoreID, AppliedIndex: l.AppliedIndex, Shards: l.Shards, Node: l.Node, PeerAddr: l.PeerAddr,
			DebugAddr: l.DebugAddr})
		if err == nil && l.TransferAddr != "" {
			err = p.JSONLine(map[string]string{"event": "transfer_listening", "transfer_addr": l.TransferAddr})
		}
		return err
	}
	var err error
	if l.Join != "" {
		_, err = fmt.Fprintf(p.w, "serving %s on http://%s as a read replica of %s\n", l.DataDir, l.APIAddr, l.Join)
	} else {
		_, err = fmt.Fprintf(p.w, "serving %s on http://%s (applied index %d, %d shards)\n", l.DataDir, l.APIAddr, l.AppliedIndex, l.Shards)
	}
	if err == nil && l.Node != "" {
		_, err = fmt.Fprintf(p.w, "cluster member %s, peers connect to %s\n", l.Node, l.PeerAddr)
	}
	if err == nil && l.TransferAddr != "" {
		_, err = fmt.Fprintf(p.w, "accepting transfers on %s\n", l.TransferAddr)
	}
	if err == nil && l.DebugAddr != "" {
		_, err = fmt.Fprintf(p.w, "profiles on http://%s/debug/pprof/\n", l.DebugAddr)
	}
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

// transferServeFlags are the flags serve takes for transfers.
func transferServeFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "transfer-listen", Usage: "accept snapshot transfers to joining nodes (serve --join) on `HOST:PORT`"},
		&cli.StringFlag{Name: "join", Usage: "start as a read replica of the node whose --transfer-listen is `HOST:PORT`: receive its snapshot, cut over, then follow its log"},
		newSizeFlag("transfer-max-rate", "send each transfer at most `RATE` bytes per second, so the store's readers and writers keep the machine (0: no limit)", 32<<20),
		secretFlag(),
		progressFlag(),
	}, tlsFlags()...)
}

const serveTransferHelp = `Transfers: with a shared secret (--secret-file or KVTOOL_SECRET), the server
sends snapshots: POST /v1/transfer/send {"to": "HOST:PORT"} (kvtool transfer
send --addr), GET /v1/transfer/stream, and with --transfer-listen HOST:PORT
to nodes started with --join. GET /v1/transfers lists the leases receiving
peers hold. --join HOST:PORT starts a node that receives the snapshot of
the server listening there and then follows its log as a read replica:
before its cutover it answers 503 "syncing" (GET /v1/status shows the
progress); after it serves reads and refuses writes (403).`

// transferServeOf checks serve's transfer flags into cfg: the listener,
// the secret (required with --transfer-listen or --join), TLS and the
// rate.
func transferServeOf(cCtx *cli.Context, cfg *node.Config) error {
	cfg.TransferListen, cfg.TransferMaxRate = cCtx.String("transfer-listen"), sizeFlag(cCtx, "transfer-max-rate")
	if cCtx.IsSet("join") {
		cfg.Join = cCtx.String("join")
	}
	if cCtx.IsSet("transfer-listen") {
		if err := checkHostPort(cCtx, "transfer-listen", cfg.TransferListen); err != nil {
			return err
		}
	}
	var err error
	if cfg.Secret, err = loadSecret(cCtx, cfg.TransferListen != "" || cCtx.IsSet("join")); err != nil {
		return err
	}
	if cfg.DialTLS, err = tlsConfig(cCtx, false); err != nil {
		return err
	}
	if cfg.TransferListen != "" {
		serverTLS, err := tlsConfig(cCtx, true)
		if err != nil && cCtx.String("tls-cert") != "" {
			return err
		}
		cfg.TransferTLS = serverTLS
	}
	return nil
}
