package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/vfs"
)

// DefaultJoinTimeout bounds how long a joining member keeps asking the
// cluster to add it (no leader, a member restarting) before it gives up.
const DefaultJoinTimeout = time.Minute

// joinRecord returns the JOIN record of a member joining a running
// cluster (ClusterConfig.JoinCluster): the one its data directory holds
// (a restart: it is not added twice), or a new one after it asked the
// member at JoinCluster to add it as a learner. A directory that holds a
// founding member's raft state is refused.
func (n *node) joinRecord(ctx context.Context) (*cluster.JoinRecord, error) {
	c := n.cfg.Cluster
	rec, ok, err := cluster.ReadJoin(n.cfg.FS, n.st.Dir())
	if err != nil {
		return nil, err
	}
	if ok {
		if rec.Self.Name != c.Name {
			return nil, fmt.Errorf("%s joined the cluster as %s, not %s (--node)", n.st.Dir(), rec.Self.Name, c.Name)
		}
		n.log.Info("resuming the join recorded in the data directory (not asking to be added again)", "cluster_id", fmt.Sprintf("%016x", rec.ClusterID), "catch_up_index", rec.CatchUp)
		return &rec, nil
	}
	if exists(n.cfg.FS, filepath.Join(n.st.Dir(), cluster.RaftDir, cluster.StateName)) {
		return nil, fmt.Errorf("%s holds a founding member's raft state: start it with --cluster, not --join-cluster", n.st.Dir())
	}
	self := cluster.MemberRecord{Name: c.Name, ID: cluster.MemberID(c.Name), PeerAddr: n.advertisedPeer(), APIAddr: n.advertisedAPI(), StayLearner: c.Learner}
	ans, err := askToJoin(ctx, c, self)
	if err != nil {
		return nil, err
	}
	j, err := joinRecordOf(self, ans)
	if err != nil {
		return nil, fmt.Errorf("the answer of %s: %w", c.JoinCluster, err)
	}
	if err := cluster.WriteJoin(n.cfg.FS, n.st.Dir(), j); err != nil {
		return nil, fmt.Errorf("the cluster added member %s, but recording it failed: %w (fix the disk, then start again with the same --node and --peer-listen: the add is asked again and answered the same)", c.Name, err)
	}
	n.log.Info("added to the cluster as a learner", "cluster_id", fmt.Sprintf("%016x", j.ClusterID), "via", c.JoinCluster, "catch_up_index", j.CatchUp)
	return &j, nil
}

func exists(fs vfs.FS, path string) bool {
	f, err := fs.Open(path)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// askToJoin asks the member at c.JoinCluster to add self as a learner,
// again while the answer says to retry (no leader yet, a member
// restarting), for up to DefaultJoinTimeout.
func askToJoin(ctx context.Context, c *ClusterConfig, self cluster.MemberRecord) (*api.MemberChangeResult, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultJoinTimeout)
	defer cancel()
	cl := client.New(c.JoinCluster)
	defer cl.Close()
	sign := func(method, path string, unix int64, body []byte) string {
		return cluster.MemberChangeMAC(c.Secret, method, path, unix, body)
	}
	req := api.MemberAddRequest{Name: self.Name, PeerAddr: self.PeerAddr, APIAddr: self.APIAddr, StayLearner: self.StayLearner}
	for {
		res, err := cl.AddMember(ctx, sign, req)
		if err == nil {
			return res, nil
		}
		var ce *client.Error
		retry := errors.Is(err, client.ErrNoServer) || errors.As(err, &ce) && ce.Status == http.StatusServiceUnavailable
		if !retry || ctx.Err() != nil {
			return nil, fmt.Errorf("ask %s to add member %s: %w", c.JoinCluster, self.Name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ask %s to add member %s: %w (last answer: %v)", c.JoinCluster, self.Name, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// joinRecordOf turns the cluster's answer into the JOIN record.
func joinRecordOf(self cluster.MemberRecord, res *api.MemberChangeResult) (cluster.JoinRecord, error) {
	cid, err := strconv.ParseUint(res.ClusterID, 16, 64)
	if err != nil || cid == 0 {
		return cluster.JoinRecord{}, fmt.Errorf("cluster ID %q", res.ClusterID)
	}
	a := cluster.JoinAnswer{ClusterID: cid, CommitIndex: res.CommitIndex}
	for _, m := range res.Members {
		id, err := strconv.ParseUint(m.ID, 16, 64)
		if err != nil {
			return cluster.JoinRecord{}, fmt.Errorf("member %s: ID %q", m.Name, m.ID)
		}
		a.Members = append(a.Members, cluster.MemberRecord{Name: m.Name, ID: id, PeerAddr: m.PeerAddr, APIAddr: m.APIAddr, StayLearner: m.StayLearner})
	}
	for _, v := range res.InitialVoters {
		id, err := strconv.ParseUint(v, 16, 64)
		if err != nil {
			return cluster.JoinRecord{}, fmt.Errorf("initial voter %q", v)
		}
		a.InitialVoters = append(a.InitialVoters, id)
	}
	return cluster.JoinRecordFor(self, a), nil
}

// advertisedPeer is the peer address told to the cluster:
// --advertise-peer if given, else --peer-listen as bound (its port resolved), with its host unless that is a wildcard.
func (n *node) advertisedPeer() string {
	if a := n.cfg.Cluster.AdvertisePeer; a != "" {
		return a
	}
	bound := n.peerLn.Addr().String()
	host, _, _ := net.SplitHostPort(n.cfg.Cluster.PeerListen)
	_, port, _ := net.SplitHostPort(bound)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return bound
	}
	return net.JoinHostPort(host, port)
}

func (n *node) advertisedAPI() string {
	if a := n.cfg.Cluster.AdvertiseAPI; a != "" {
		return a
	}
	return n.apiAddr()
}

// syncingMember is the API of a member that joined until it has applied
// the entries the cluster had committed when it was added: GET
// /v1/status says how far it is, the cluster endpoints and /metrics
// answer, everything else is 503 "syncing" with Retry-After. Then it
// passes every request to the member's API.
type syncingMember struct {
	next    http.Handler
	m       *cluster.Member
	join    cluster.JoinRecord
	cutOver func() // called once, at cutover
	done    chan struct{}
}

func (s *syncingMember) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	applied := s.m.Store().Snapshot().Index()
	select {
	case <-s.done:
		s.next.ServeHTTP(w, r)
		return
	default:
	}
	if applied >= s.join.CatchUp {
		s.cut()
		s.next.ServeHTTP(w, r)
		return
	}
	switch p := r.URL.Path; {
	case p == "/metrics" || p == "/v1/cluster" || len(p) > len("/v1/cluster/") && p[:len("/v1/cluster/")] == "/v1/cluster/":
		s.next.ServeHTTP(w, r)
	case p == "/v1/status":
		writeSyncing(w, http.StatusOK, s.progress(applied))
	default:
		w.Header().Set("Retry-After", "1")
		pr := s.progress(applied)
		writeSyncing(w, http.StatusServiceUnavailable, map[string]any{"error": fmt.Sprintf(
			"syncing: member %s joined cluster %016x and has applied %d of the %d entries it catches up to before it serves; retry, or ask another member",
			s.join.Self.Name, s.join.ClusterID, applied, s.join.CatchUp), "cluster_join": pr["cluster_join"]})
	}
}

func (s *syncingMember) cut() {
	select {
	case <-s.done:
	default:
		close(s.done)
		if s.cutOver != nil {
			s.cutOver()
		}
	}
}

// watch cuts over as soon as the member has caught up, whether or not a
// request came.
func (s *syncingMember) watch(ctx context.Context) {
	if err := s.m.Store().WaitApplied(ctx, s.join.CatchUp); err == nil {
		s.cut()
	}
}

func (s *syncingMember) progress(applied uint64) map[string]any {
	st := s.m.Status()
	return map[string]any{"syncing": true, "applied_index": applied, "cluster_join": map[string]any{
		"node": s.join.Self.Name, "cluster_id": fmt.Sprintf("%016x", s.join.ClusterID), "applied_index": applied,
		"catch_up_index": s.join.CatchUp, "commit_index": st.Commit, "role": st.Role,
		"snapshot": st.Install, // the snapshot it receives, if it needs one (nil: none came)
	}}
}

func writeSyncing(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// syncMember wraps a joined member's API h: it syncs until the member
// has caught up (syncingMember), then reports the cutover.
func (n *node) syncMember(ctx context.Context, g *errgroup.Group, h http.Handler) http.Handler {
	s := &syncingMember{next: h, m: n.member, join: *n.memberJoin, done: make(chan struct{}), cutOver: func() {
		n.log.Info("caught up with the cluster: serving", "applied_index", n.member.Store().Snapshot().Index())
		if n.cfg.Events.CutOver != nil {
			n.cfg.Events.CutOver()
		}
	}}
	g.Go(func() error { s.watch(ctx); return nil })
	return s
}
