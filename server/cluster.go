package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/store"
)

// Cluster is a cluster member as the API uses it; *cluster.Member is one
// (cluster.StartMember). With Options.Cluster set, writes are proposed
// through raft instead of committed on the store, which must then be the
// member's store (opened with store.Options.Replica).
type Cluster interface {
	// Propose replicates a write; see cluster.Node.Propose.
	Propose(ctx context.Context, req cluster.Request) (cluster.Result, error)
	// LinearizableSnapshot returns a snapshot holding every write
	// acknowledged before the call; see cluster.Node.LinearizableSnapshot.
	LinearizableSnapshot(ctx context.Context) (*store.Snapshot, error)
	// TransferLeader makes member to the leader; see cluster.Node.TransferLeader.
	TransferLeader(ctx context.Context, to uint64) error
	// Status describes the member and its view of the others.
	Status() cluster.Status
}

// Defaults of the cluster options.
const (
	// DefaultWriteTimeout is how long a write waits for a quorum before
	// it is answered 503.
	DefaultWriteTimeout = 5 * time.Second
	// DefaultReadTimeout is how long a linearizable read waits for the
	// leader's confirmation.
	DefaultReadTimeout = 5 * time.Second
	// DefaultTransferTimeout bounds POST /v1/cluster/transfer-leader.
	DefaultTransferTimeout = 10 * time.Second
	// DefaultAskTimeout bounds GET /v1/cluster's question to each member.
	DefaultAskTimeout = 2 * time.Second
	// retryAfter is the Retry-After of a 503 a retry may cure (seconds).
	retryAfter = "1"
)

// propose replicates t through the cluster and answers {"index": N} once a
// quorum logged it and this member applied it; a retry of a request ID
// that already applied gets the first index and DuplicateHeader.
func (s *Server) propose(w http.ResponseWriter, r *http.Request, t *store.Txn) {
	id := r.Header.Get(api.RequestIDHeader)
	if len(id) > cluster.MaxRequestID {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s of %d bytes is over the limit of %d", api.RequestIDHeader, len(id), cluster.MaxRequestID))
		return
	}
	if key, ok := reservedKey(t); ok {
		s.m.commits.WithLabelValues(resultInvalid).Inc()
		writeError(w, http.StatusBadRequest, fmt.Sprintf("key %q is under the cluster's reserved prefix %q (request deduplication, member records): it cannot be written", key, cluster.ReservedPrefix))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.WriteTimeout)
	defer cancel()
	start := time.Now()
	res, err := s.cluster.Propose(ctx, cluster.Request{ID: id, Txn: t})
	s.m.observeCommit(err, time.Since(start))
	if err != nil {
		s.clusterError(w, r, "write", err)
		return
	}
	if res.Duplicate {
		w.Header().Set(api.DuplicateHeader, "true")
	}
	writeIndex(w, res.Index) // api.IndexResult, as the single node answers it: no reflection per write
}

// clusterError answers a failed cluster call: 503 with Retry-After when
// no quorum answered in time (the caller may retry, with the same request
// ID for a write), 503 without it when this member stopped (ask another),
// else as a failed commit.
func (s *Server) clusterError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, cluster.ErrNoQuorum):
		w.Header().Set("Retry-After", retryAfter)
		msg := what + ": " + err.Error()
		if what == "write" {
			msg += "; the write may still apply: retry it with the same " + api.RequestIDHeader + " and it applies at most once"
		}
		writeError(w, http.StatusServiceUnavailable, msg)
	case errors.Is(err, cluster.ErrStopped):
		writeError(w, http.StatusServiceUnavailable, what+": this member has stopped ("+err.Error()+"); send the request to another member")
	case errors.Is(err, cluster.ErrUnknownMember):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.commitError(w, r, err)
	}
}

// reservedKey returns the first key of t under the cluster's reserved
// prefix.
func reservedKey(t *store.Txn) (string, bool) {
	for _, op := range t.Ops {
		if strings.HasPrefix(op.Key, cluster.ReservedPrefix) {
			return op.Key, true
		}
	}
	return "", false
}

// Consistency levels of a read (?consistency=).
const (
	consistencyLocal        = "local"
	consistencyLinearizable = "linearizable"
)

// readSnapshot returns the snapshot a read is served from: the published
// one (local, the default: no network wait), or with
// ?consistency=linearizable one that holds every write acknowledged before
// the request (raft ReadIndex; on a single node the published snapshot
// already does). On failure it has answered and ok is false.
func (s *Server) readSnapshot(w http.ResponseWriter, r *http.Request) (snap *store.Snapshot, ok bool) {
	if r.URL.RawQuery == "" { // the common case, without parsing a query
		return s.st.Snapshot(), true
	}
	switch c := r.URL.Query().Get("consistency"); c {
	case "", consistencyLocal:
		return s.st.Snapshot(), true
	case consistencyLinearizable:
		if s.cluster == nil {
			return s.st.Snapshot(), true
		}
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("consistency %q: want local (the default) or linearizable", c))
		return nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.ReadTimeout)
	defer cancel()
	snap, err := s.cluster.LinearizableSnapshot(ctx)
	if err != nil {
		s.clusterError(w, r, "linearizable read", err)
		return nil, false
	}
	return snap, true
}

// scanSnapshot is Snapshot.Scan without the cluster's reserved keys (a
// cluster member hides its request-deduplication table from scans; GET of
// one such key, the key count and the state hash still include them, so
// the hash matches `kvtool replay` of the data directory).
func (s *Server) scanSnapshot(snap *store.Snapshot, o store.ScanOptions, fn func(string, []byte) bool) {
	if s.cluster == nil {
		snap.Scan(o, fn)
		return
	}
	scanOutside(snap, o, cluster.ReservedPrefix, fn)
}

// scanOutside scans o's range in two parts, below hidden and above every
// key that starts with hidden, with o.Limit counting over both.
func scanOutside(snap *store.Snapshot, o store.ScanOptions, hidden string, fn func(string, []byte) bool) {
	n, stopped := 0, false
	count := func(k string, v []byte) bool {
		n++
		stopped = !fn(k, v)
		return !stopped
	}
	lo := o
	if lo.End == "" || lo.End > hidden {
		lo.End = hidden
	}
	snap.Scan(lo, count)
	hi := o
	hi.Start = max(o.Start, prefixEnd(hidden))
	switch {
	case stopped, o.Limit > 0 && n >= o.Limit, o.End != "" && hi.Start >= o.End:
		return
	case o.Limit > 0:
		hi.Limit = o.Limit - n
	}
	snap.Scan(hi, count)
}

// prefixEnd is the first key after every key that starts with p (p ends
// in a byte below 0xff).
func prefixEnd(p string) string {
	b := []byte(p)
	b[len(b)-1]++
	return string(b)
}

// clusterStatus answers GET /v1/cluster: this member's view, with every
// other member asked (in parallel, each for at most AskTimeout) for its
// own role and applied index, and the leader for the match indexes. With
// ?local=true, this member's view alone.
func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	if !s.isCluster(w) {
		return
	}
	st := s.cluster.Status()
	view := clusterView(st)
	if r.URL.Query().Get("local") != "true" {
		s.askMembers(r.Context(), view)
	}
	writeJSON(w, http.StatusOK, view)
}

func (s *Server) isCluster(w http.ResponseWriter) bool {
	if s.cluster == nil {
		writeError(w, http.StatusNotFound, "this server is not a cluster member (it runs a single node: kvtool serve without --node)")
	}
	return s.cluster != nil
}

// clusterView converts a member's status to its API form (this member's
// view: applied index and lag of itself only).
func clusterView(st cluster.Status) *api.ClusterStatus {
	v := &api.ClusterStatus{
		Name: st.Name, ID: hexID(st.ID), ClusterID: hexID(st.ClusterID), Role: st.Role, Term: st.Term,
		CommitIndex: st.Commit, AppliedIndex: st.AppliedIndex, LastIndex: st.LastIndex, Members: []api.ClusterMember{},
		Proposals: api.ProposalCounts{Total: st.Proposals, OK: st.ProposalsOK, Aborted: st.ProposalsAborted,
			Failed: st.ProposalsFailed, Retries: st.ProposalRetries},
		ReadIndexes: st.ReadIndexes, ReadRetries: st.ReadRetries, LeaderChanges: st.LeaderChanges,
		SnapshotsNeeded: st.SnapshotsNeeded, LogCuts: st.LogCuts, Failed: st.Err,
		SnapshotsSent: st.Snapshots.Sent, SnapshotsFailed: st.Snapshots.SendFailed,
		SnapshotBytesSent: st.Snapshots.BytesSent, SnapIndex: st.SnapIndex,
		RefusedMessages: st.Refused, RefusedError: st.RefusedError,
	}
	if st.Leader != 0 {
		v.LeaderID = hexID(st.Leader)
	}
	for _, m := range st.Members {
		cm := api.ClusterMember{
			Name: m.Name, ID: hexID(m.ID), Role: memberRole(m, st.Leader), Self: m.Self, PeerAddr: m.PeerAddr, APIAddr: m.APIAddr,
			MatchIndex: m.Match, Connected: m.Connected, RoundTripSeconds: m.RoundTrip.Seconds(), DroppedMessages: m.Dropped,
			PinnedIndex: m.PinnedIndex, PinnedBytes: m.PinnedBytes, LeaseState: m.LeaseState,
		}
		if !m.LeaseExpires.IsZero() {
			cm.LeaseExpires = m.LeaseExpires.UTC().Format(time.RFC3339)
		}
		if m.Self {
			cm.Role = st.Role
			cm.AppliedIndex, cm.Lag = new(st.AppliedIndex), new(lag(st.Commit, st.AppliedIndex))
		}
		if m.ID == st.Leader {
			v.Leader = m.Name
		}
		v.Members = append(v.Members, cm)
	}
	return v
}

func memberRole(m cluster.MemberStatus, leader uint64) string {
	switch {
	case m.Learner:
		return "learner"
	case m.ID == leader:
		return "leader"
	}
	return "follower"
}

func lag(commit, applied uint64) uint64 {
	if applied >= commit {
		return 0
	}
	return commit - applied
}

func hexID(id uint64) string { return fmt.Sprintf("%016x", id) }

// askMembers asks every other member with a known API address for its own
// view, and fills in its role and applied index, the leader's match
// indexes, and every lag against the leader's commit index.
func (s *Server) askMembers(ctx context.Context, v *api.ClusterStatus) {
	answers := make([]*api.ClusterStatus, len(v.Members))
	var wg sync.WaitGroup
	for i := range v.Members {
		m := &v.Members[i]
		if m.Self {
			continue
		}
		if m.APIAddr == "" {
			m.Error = "API address not known yet (the member has not connected to this one)"
			continue
		}
		wg.Go(func() {
			actx, cancel := context.WithTimeout(ctx, s.opts.AskTimeout)
			defer cancel()
			c := client.New(m.APIAddr)
			defer c.Close()
			a, err := c.LocalClusterStatus(actx)
			if err != nil {
				m.Error = fmt.Sprintf("asking its API at %s: %v", m.APIAddr, err)
				return
			}
			answers[i] = a
		})
	}
	wg.Wait()
	mergeAnswers(v, answers)
}

// mergeAnswers folds the members' own views into v.
func mergeAnswers(v *api.ClusterStatus, answers []*api.ClusterStatus) {
	leaderView, commit := v, v.CommitIndex
	for i, a := range answers {
		if a == nil {
			continue
		}
		m := &v.Members[i]
		m.Role, m.AppliedIndex = a.Role, new(a.AppliedIndex)
		if a.ID != m.ID {
			m.Error = fmt.Sprintf("the API at %s answered as member %s (%s), not %s", m.APIAddr, a.Name, a.ID, m.ID)
		}
		if a.Role == "leader" {
			leaderView, commit = a, a.CommitIndex
		}
	}
	match := map[string]uint64{}
	for _, lm := range leaderView.Members {
		match[lm.ID] = lm.MatchIndex
	}
	for i := range v.Members {
		m := &v.Members[i]
		if leaderView.Role == "leader" {
			m.MatchIndex = match[m.ID]
		}
		if m.AppliedIndex != nil {
			m.Lag = new(lag(commit, *m.AppliedIndex))
		}
	}
}

// transferLeader answers POST /v1/cluster/transfer-leader {"to": NAME or
// ID}: 200 with the new leader once this member sees it lead.
func (s *Server) transferLeader(w http.ResponseWriter, r *http.Request) {
	if !s.isCluster(w) {
		return
	}
	var req api.TransferLeaderRequest
	if err := decodeSmallJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, `body: `+err.Error()+`; want {"to": "NAME"}`)
		return
	}
	st := s.cluster.Status()
	to, ok := findMember(st, req.To)
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("no member %q in this cluster (members: %s)", req.To, memberNames(st)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.TransferTimeout)
	defer cancel()
	if err := s.cluster.TransferLeader(ctx, to.ID); err != nil {
		s.clusterError(w, r, "transfer leader to "+req.To, err)
		return
	}
	term := s.cluster.Status().Term
	writeJSON(w, http.StatusOK, api.TransferLeaderResult{Leader: to.Name, LeaderID: hexID(to.ID), Term: term})
}

// maxSmallBody bounds the body of a small JSON request.
const maxSmallBody = 64 << 10

// decodeSmallJSON decodes the body of r, at most maxSmallBody bytes, into
// v; unknown fields are an error.
func decodeSmallJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxSmallBody))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// findMember finds a member by name or by ID (hex).
func findMember(st cluster.Status, nameOrID string) (cluster.MemberStatus, bool) {
	for _, m := range st.Members {
		if m.Name == nameOrID && nameOrID != "" {
			return m, true
		}
	}
	if id, err := strconv.ParseUint(nameOrID, 16, 64); err == nil {
		for _, m := range st.Members {
			if m.ID == id {
				return m, true
			}
		}
	}
	return cluster.MemberStatus{}, false
}

func memberNames(st cluster.Status) string {
	var names []string
	for _, m := range st.Members {
		if m.Name != "" {
			names = append(names, m.Name)
		} else {
			names = append(names, hexID(m.ID))
		}
	}
	return strings.Join(names, ", ")
}
