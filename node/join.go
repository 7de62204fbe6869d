package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
)

// Reconnection pauses of a join: the first, and the most it grows to.
const (
	joinPause    = time.Second
	joinMaxPause = 30 * time.Second
)

// joiner is a node joining a source: its HTTP handler (syncing, then the
// replica's API), the store once complete (the node's), and the join's
// status.
type joiner struct {
	n       *node
	source  string
	handler atomic.Pointer[http.Handler]

	mu     sync.Mutex
	status server.JoinStatus
	// startMaint starts the replica's maintenance (set by start; nil
	// before: a store opened before then starts it in start).
	startMaint func(*store.Store, *server.Server)
	srv        *server.Server // the replica's API, once open
}

func newJoiner(n *node) *joiner {
	j := &joiner{n: n, source: n.cfg.Join}
	j.status.Source, j.status.Phase = j.source, "connecting"
	// A replica restarted knows where writes go before it reconnects.
	api, err := transfer.ReadSourceAPI(n.cfg.FS, n.cfg.Dir)
	if err != nil {
		n.log.Warn("join: cannot read the source's API address recorded by an earlier session", "error", err)
	}
	j.status.SourceAPI = api
	h := server.Syncing(j.snapshot)
	j.handler.Store(&h)
	return j
}

func (j *joiner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*j.handler.Load()).ServeHTTP(w, r)
}

// snapshot returns a copy of the join's status, with the replica's
// applied index once it serves.
func (j *joiner) snapshot() *server.JoinStatus {
	j.mu.Lock()
	s := j.status
	j.mu.Unlock()
	if st := j.n.store(); st != nil {
		s.Progress.AppliedIndex = st.Snapshot().Index()
	}
	return &s
}

// replica names the source for the replica's API: its status, and its
// refusal of writes.
func (j *joiner) replica() *api.ReplicaStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return &api.ReplicaStatus{Source: j.source, SourceAPI: j.status.SourceAPI}
}

func (j *joiner) setStatus(f func(s *server.JoinStatus)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(&j.status)
}

// openIfComplete opens the data directory at once if it already holds a
// store (a replica that restarted), so it serves reads while it catches
// up.
func (j *joiner) openIfComplete() error {
	st, err := transfer.ReadLocalStatus(j.n.cfg.FS, j.n.cfg.Dir)
	if err != nil || !st.Complete {
		return nil
	}
	if _, err := j.open(nil); err != nil {
		return partError(PartStore, OpOpen, "", err)
	}
	return nil
}

// open opens the complete directory as a read replica (once) and serves
// its API from then on. base, if set, is its base checkpoint as the
// cutover's verification decoded it (store.Options.Base).
func (j *joiner) open(base *store.BaseBlocks) (*store.Store, error) {
	n := j.n
	n.mu.Lock()
	if n.st != nil {
		defer n.mu.Unlock()
		return n.st, nil
	}
	st, err := store.Open(store.Options{FS: n.cfg.FS, Dir: n.cfg.Dir, Replica: true, MaintenanceRate: n.cfg.MaintenanceRate, MaintenanceShare: n.cfg.MaintenanceShare, Base: base})
	if err != nil {
		n.mu.Unlock()
		return nil, err
	}
	srv := server.New(st, server.Options{Logger: n.log, Replica: j.replica})
	withTransfers := server.WithTransfers(srv, st, server.TransferOptions{Source: n.storeSource(st), Join: j.snapshot, Logger: n.log})
	h := server.Replica(withTransfers, j.replica)
	j.handler.Store(&h)
	n.st = st
	n.mu.Unlock()

	j.mu.Lock()
	j.status.CutOver, j.srv = true, srv
	start := j.startMaint
	j.mu.Unlock()
	if start != nil {
		start(st, srv)
	}
	if n.cfg.Events.CutOver != nil {
		n.cfg.Events.CutOver()
	}
	n.log.Info("serving the replica", "data_dir", n.cfg.Dir, "applied_index", st.Snapshot().Index())
	return st, nil
}

// start runs the join in g until ctx ends: it follows the source, and
// runs the replica's maintenance once its store is open. A join that
// retrying cannot mend fails g, which stops the node.
func (j *joiner) start(ctx context.Context, g *errgroup.Group) {
	start := func(st *store.Store, srv *server.Server) { j.n.startMaintenance(ctx, g, st, srv) }
	j.mu.Lock()
	j.startMaint = start
	srv := j.srv
	j.mu.Unlock()
	if srv != nil { // opened before serving: a replica that restarted
		start(j.n.store(), srv)
	}
	g.Go(func() error { return partError(PartJoin, OpServe, j.source, j.follow(ctx)) })
}

// follow receives from the source and follows its log, reconnecting with
// a growing pause after each failure that may pass, until ctx ends. It
// returns a failure that retrying cannot mend: a source that is not a
// kvtool transfer port at all (*WrongPeerError), or transfer.Permanent.
func (j *joiner) follow(ctx context.Context) error {
	pause := joinPause
	for attempt := 1; ctx.Err() == nil; attempt++ {
		j.setStatus(func(s *server.JoinStatus) { s.Attempts = attempt })
		err := j.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		j.setStatus(func(s *server.JoinStatus) { s.Connected, s.Error = false, err.Error() })
		var wp *WrongPeerError
		if errors.As(err, &wp) {
			j.n.log.Error("join: the source is not a kvtool transfer port; stopping", "source", j.source, "error", err)
			return err
		}
		if transfer.Permanent(err) {
			return fmt.Errorf("join %s: %w", j.source, err)
		}
		j.n.log.Warn("join: session ended; reconnecting", "source", j.source, "error", err, "attempt", attempt, "pause", pause)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil
		}
		pause = min(2*pause, joinMaxPause)
	}
	return nil
}

// session is one connection to the source: it receives what the
// directory lacks, and after cutover applies the source's log.
func (j *joiner) session(ctx context.Context) error {
	raw, err := j.n.dial(ctx, j.source)
	if err != nil {
		return err
	}
	conn := transfer.WatchHello(raw, 0)
	defer conn.Close()
	j.setStatus(func(s *server.JoinStatus) { s.Connected, s.Phase = true, transfer.PhaseHandshake })
	// The cutover's verification decodes the checkpoint; the store opened
	// right after it loads from those blocks instead of decoding it again.
	var base *store.BaseBlocks
	_, err = transfer.Receive(ctx, conn, transfer.ReceiveOptions{
		FS: j.n.cfg.FS, Dir: j.n.cfg.Dir, Secret: j.n.cfg.Secret, Peer: j.source, Follow: true,
		CheckpointBlocks: func(info checkpoint.Info) func(*format.Block) error {
			base = store.NewBaseBlocks(info)
			return base.Add
		},
		Open: func() (transfer.Replica, error) {
			st, err := j.open(base)
			base = nil
			if err != nil {
				return nil, err // not a nil *store.Store in a non-nil interface
			}
			return st, nil
		},
		Progress: j.progress,
	})
	if err != nil && conn.WrongPeer() && ctx.Err() == nil {
		return &WrongPeerError{Addr: j.source, What: DescribePeer(ctx, j.source)}
	}
	return err
}

// progress records a session's progress, and reports it until cutover.
func (j *joiner) progress(p transfer.Progress) {
	j.setStatus(func(s *server.JoinStatus) {
		s.Phase, s.Progress = p.Phase, p
		if p.SourceAPI != "" {
			s.SourceAPI = p.SourceAPI
		}
	})
	if ev := j.n.cfg.Events.JoinProgress; ev != nil && j.n.store() == nil {
		ev(p)
	}
}
