package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
)

// Run runs the node cfg describes until ctx is done or a part fails, then
// stops it (see the package doc for the order). It returns nil after a
// clean stop, an *Error naming the part that failed, or the error of
// Events.Listening as is.
func Run(ctx context.Context, cfg Config) error {
	cfg.fill()
	if err := checkCluster(&cfg); err != nil {
		return err
	}
	n := &node{cfg: cfg, log: cfg.Logger}
	if cfg.Join != "" {
		n.join = newJoiner(n)
	}
	if err := n.bind(); err != nil {
		return err
	}
	defer n.closeListeners()
	if err := n.open(); err != nil {
		return err
	}
	if n.cfg.Cluster != nil {
		if err := n.startMember(); err != nil {
			n.closeStore() //nolint:errcheck // the member's error is the one to report
			return err
		}
	}
	if err := n.announce(); err != nil {
		n.closeMember() //nolint:errcheck // the announcement's error is the one to report
		n.closeStore()  //nolint:errcheck
		return err
	}
	return n.run(ctx)
}

// node is one running node.
type node struct {
	cfg  Config
	log  *slog.Logger
	join *joiner // nil for a node that is not joining

	apiLn net.Listener
	// xferLn is the transfer listener: nil without one, and once the
	// accept loop owns it.
	xferLn net.Listener
	// peerLn is a cluster member's peer listener, until the member owns it.
	peerLn net.Listener
	// debugLn is the debug (pprof) listener: nil without one, and once
	// its server owns it.
	debugLn net.Listener
	member  *cluster.Member // nil unless a cluster member, and once closed
	// memberJoin is the JOIN record of a member that joined a running
	// cluster (nil for a founder): its API syncs until it caught up.
	memberJoin *cluster.JoinRecord

	mu sync.Mutex
	st *store.Store // nil until open (a join opens it at cutover)
}

// bind listens on the API's address, then on the transfer listener's,
// the debug listener's and the peer listener's: a port in use fails
// before any file is touched.
func (n *node) bind() error {
	ln, err := net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return partError(PartAPI, OpListen, n.cfg.Listen, err)
	}
	n.apiLn = ln
	if n.cfg.TransferListen != "" && n.join == nil {
		if n.xferLn, err = transfer.Listen(n.cfg.TransferListen, n.cfg.TransferTLS); err != nil {
			ln.Close()
			return partError(PartTransfers, OpListen, n.cfg.TransferListen, err)
		}
	}
	if n.cfg.DebugListen != "" {
		if n.debugLn, err = net.Listen("tcp", n.cfg.DebugListen); err != nil {
			n.closeListeners()
			return partError(PartDebug, OpListen, n.cfg.DebugListen, err)
		}
	}
	if n.cfg.Cluster == nil {
		return nil
	}
	if err := n.bindPeers(); err != nil {
		n.closeListeners()
		return err
	}
	return nil
}

// closeListeners closes the listeners no part took over.
func (n *node) closeListeners() {
	n.apiLn.Close()
	if n.xferLn != nil {
		n.xferLn.Close()
	}
	if n.peerLn != nil {
		n.peerLn.Close()
	}
	if n.debugLn != nil {
		n.debugLn.Close()
	}
}

// apiAddr is the address the API listens on.
func (n *node) apiAddr() string { return n.apiLn.Addr().String() }

// open opens (or creates) the store; a joining node opens it only if its
// directory is complete already (a replica that restarted).
func (n *node) open() error {
	if n.join != nil {
		return n.join.openIfComplete()
	}
	opts := store.Options{FS: n.cfg.FS, Dir: n.cfg.Dir, Create: true, Shards: n.cfg.shards(),
		SegmentSize: n.cfg.SegmentSize, MaintenanceRate: n.cfg.MaintenanceRate, MaintenanceShare: n.cfg.MaintenanceShare}
	if n.cfg.Cluster != nil {
		// The raft log holds every entry durably: the store's WAL is
		// synced in the background, without competing with it per write.
		opts.Replica, opts.WALSyncInterval = true, cluster.StoreWALSync
	}
	st, err := store.Open(opts)
	if err != nil {
		return partError(PartStore, OpOpen, "", err)
	}
	n.st = st
	return nil
}

// store returns the node's store, nil until it is open.
func (n *node) store() *store.Store {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st
}

// announce logs where the node listens and calls Events.Listening.
func (n *node) announce() error {
	l := Listening{APIAddr: n.apiAddr(), DataDir: n.cfg.Dir, Join: n.cfg.Join}
	if n.xferLn != nil {
		l.TransferAddr = n.xferLn.Addr().String()
	}
	if n.debugLn != nil {
		l.DebugAddr = n.debugLn.Addr().String()
	}
	if n.member != nil {
		l.PeerAddr, l.Node = n.member.Transport().Addr().String(), n.member.Name()
	}
	if st := n.store(); st != nil {
		man := st.CurrentManifest()
		l.StoreID, l.AppliedIndex, l.Shards = man.StoreID.String(), st.Snapshot().Index(), man.Shards
	}
	if n.join != nil {
		n.log.Info("listening", "addr", l.APIAddr, "data_dir", l.DataDir, "joining", l.Join)
	} else {
		l.DataDir = n.st.Dir()
		n.logOpened(n.st)
		n.log.Info("listening", "addr", l.APIAddr, "data_dir", l.DataDir, "applied_index", l.AppliedIndex, "shards", l.Shards)
		if l.Node != "" {
			n.log.Info("cluster member", "node", l.Node, "peer_addr", l.PeerAddr)
		}
	}
	if l.DebugAddr != "" {
		n.log.Info("serving profiles", "url", "http://"+l.DebugAddr+"/debug/pprof/")
	}
	if n.cfg.Events.Listening == nil {
		return nil
	}
	return n.cfg.Events.Listening(l)
}

// logOpened logs what opening the store found that an operator should
// know: a shard count asked for in vain, a torn WAL tail cut.
func (n *node) logOpened(st *store.Store) {
	if man := st.CurrentManifest(); n.cfg.Shards > 0 && man.Shards != n.cfg.Shards {
		n.log.Warn("--shards ignored: the data directory already has its shard count", "shards", man.Shards, "flag", n.cfg.Shards)
	}
	if cut := st.Log().TailCut(); cut != nil {
		n.log.Warn("cut a torn tail of the WAL at open", "segment", cut.Path, "offset", cut.Offset,
			"bytes", cut.Bytes, "quarantine", cut.QuarantinePath)
	}
}

// run serves until ctx is done or a part fails. Every part runs in one
// group under one context: the API, and beside it the transfer accept
// loop, maintenance and the join. When ctx ends, or a part fails (a join
// retrying cannot mend, the API's listener), all are told to stop at once:
// the API lets requests in flight finish (up to ShutdownTimeout),
// maintenance stops at its next safe point, sends and the join end. Once
// every part returned, the store closes.
func (n *node) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	if ln := n.debugLn; ln != nil {
		n.debugLn = nil
		g.Go(func() error { return serveDebug(ctx, ln) })
	}
	h := n.start(ctx, g)
	g.Go(func() error {
		err := server.Run(ctx, n.apiLn, h, server.RunOptions{Logger: n.log, ShutdownTimeout: n.cfg.ShutdownTimeout})
		return partError(PartAPI, OpServe, n.apiAddr(), err)
	})
	err := g.Wait()
	if merr := n.closeMember(); err == nil && merr != nil {
		err = partError(PartCluster, OpClose, "", fmt.Errorf("stop the cluster member: %w", merr))
	}
	applied, cerr := n.closeStore()
	if err == nil && cerr != nil {
		err = partError(PartStore, OpClose, "", fmt.Errorf("close the store: %w", cerr))
	}
	if err != nil {
		return err
	}
	n.log.Info("stopped", "applied_index", applied)
	if n.cfg.Events.Stopped != nil {
		n.cfg.Events.Stopped(applied)
	}
	return nil
}

// start starts the parts beside the API in g, and returns the API's
// handler.
func (n *node) start(ctx context.Context, g *errgroup.Group) http.Handler {
	if n.join != nil {
		n.join.start(ctx, g)
		return n.join
	}
	opts := server.Options{Logger: n.log}
	if n.member != nil {
		opts.Cluster = n.member
		n.watchMember(ctx, g)
	}
	srv := server.New(n.st, opts)
	src := n.storeSource(n.st)
	h := n.withTransfers(ctx, n.st, srv, src)
	if n.memberJoin != nil {
		h = n.syncMember(ctx, g, h)
	}
	if ln := n.xferLn; ln != nil {
		n.xferLn = nil
		g.Go(func() error { n.acceptTransfers(ctx, ln, src, srv); return nil })
	}
	n.startMaintenance(ctx, g, n.st, srv)
	return h
}

// startMaintenance runs st's automatic maintenance in g until ctx ends.
func (n *node) startMaintenance(ctx context.Context, g *errgroup.Group, st *store.Store, srv *server.Server) {
	g.Go(func() error {
		runMaintenance(ctx, st, n.cfg.Maintenance, srv.ReportMaintenance, n.log)
		return nil
	})
}

// closeStore closes the store, if open, and returns the index it stood at.
func (n *node) closeStore() (uint64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.st == nil {
		return 0, nil
	}
	applied := n.st.Snapshot().Index()
	err := n.st.Close()
	n.st = nil
	return applied, err
}
