package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/cluster"
)

// MemberAdmin is a cluster member that takes membership changes over the
// API; *cluster.Member is one. A Cluster without it answers the member
// endpoints 501.
type MemberAdmin interface {
	AddLearner(ctx context.Context, rec cluster.MemberRecord) error
	Promote(ctx context.Context, id uint64) error
	Remove(ctx context.Context, id uint64) error
	// Replace makes learner add a voter and removes voter old in one
	// joint change.
	Replace(ctx context.Context, old, add uint64) error
	JoinAnswer() cluster.JoinAnswer
	Membership() cluster.Membership
	// CheckMemberChange checks a request's authentication (see
	// api.MemberAuthHeader).
	CheckMemberChange(method, path, unix, mac string, body []byte) error
}

// DefaultMemberChangeTimeout bounds a membership change request.
const DefaultMemberChangeTimeout = 30 * time.Second

// memberRoutes are the membership change endpoints.
func (s *Server) memberRoutes() []route {
	return []route{
		{http.MethodPost, "/v1/cluster/members", s.addMember},
		{http.MethodPost, "/v1/cluster/members/{name}/promote", s.promoteMember},
		{http.MethodDelete, "/v1/cluster/members/{name}", s.removeMember},
		{http.MethodPost, "/v1/cluster/members/{name}/replace-with/{new}", s.replaceMember},
	}
}

// addMember answers POST /v1/cluster/members (api.MemberAddRequest): the
// member is added as a learner; 200 with the cluster's members once the
// change applied on the leader. Adding a member again at the same peer
// address succeeds (a joiner that restarted).
func (s *Server) addMember(w http.ResponseWriter, r *http.Request) {
	s.memberChange(w, r, func(ctx context.Context, a MemberAdmin, body []byte) error {
		var req api.MemberAddRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return fmt.Errorf("%w: body: %v; want {\"name\": \"n4\", \"peer_addr\": \"HOST:PORT\"}", errBadMemberRequest, err)
		}
		if req.Name == "" || req.PeerAddr == "" {
			return fmt.Errorf("%w: a new member needs a name and a peer address", errBadMemberRequest)
		}
		return a.AddLearner(ctx, cluster.MemberRecord{Name: req.Name, ID: cluster.MemberID(req.Name), PeerAddr: req.PeerAddr,
			APIAddr: req.APIAddr, StayLearner: req.StayLearner})
	})
}

// promoteMember answers POST /v1/cluster/members/{name}/promote: 200 once
// the learner is a voter; 409 while it lags the leader.
func (s *Server) promoteMember(w http.ResponseWriter, r *http.Request) {
	s.memberChange(w, r, func(ctx context.Context, a MemberAdmin, _ []byte) error {
		id, err := s.memberID(r.PathValue("name"))
		if err != nil {
			return err
		}
		return a.Promote(ctx, id)
	})
}

// removeMember answers DELETE /v1/cluster/members/{name}: 200 once the
// member is out of the membership (it stops on its own).
func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	s.memberChange(w, r, func(ctx context.Context, a MemberAdmin, _ []byte) error {
		id, err := s.memberID(r.PathValue("name"))
		if err != nil {
			return err
		}
		return a.Remove(ctx, id)
	})
}

// replaceMember answers POST /v1/cluster/members/{name}/replace-with/{new}:
// learner new becomes a voter and voter name leaves, in one joint change
// (the cluster's size and fault tolerance never dip); 200 once applied on
// the leader; 409 while new lags the leader.
func (s *Server) replaceMember(w http.ResponseWriter, r *http.Request) {
	s.memberChange(w, r, func(ctx context.Context, a MemberAdmin, _ []byte) error {
		old, err := s.memberID(r.PathValue("name"))
		if err != nil {
			return err
		}
		add, err := s.memberID(r.PathValue("new"))
		if err != nil {
			return err
		}
		return a.Replace(ctx, old, add)
	})
}

var errBadMemberRequest = errors.New("bad membership request")

func (s *Server) memberID(name string) (uint64, error) {
	st := s.cluster.Status()
	m, ok := findMember(st, name)
	if !ok {
		return 0, fmt.Errorf("%w: no member %q in this cluster (members: %s)", cluster.ErrUnknownMember, name, memberNames(st))
	}
	return m.ID, nil
}

// memberChange runs one authenticated membership change on the leader:
// a member that does not lead passes the request on to the one that does
// (once: a forwarded request is not passed on again).
func (s *Server) memberChange(w http.ResponseWriter, r *http.Request, do func(context.Context, MemberAdmin, []byte) error) {
	if !s.isCluster(w) {
		return
	}
	a, ok := s.cluster.(MemberAdmin)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this member does not take membership changes")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSmallBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read the body: "+err.Error())
		return
	}
	if err := a.CheckMemberChange(r.Method, r.URL.Path, r.Header.Get(api.MemberTimeHeader), r.Header.Get(api.MemberAuthHeader), body); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	st := s.cluster.Status()
	if st.Role != "leader" && r.Header.Get(api.ForwardedHeader) == "" {
		s.forwardToLeader(w, r, st, body)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), DefaultMemberChangeTimeout)
	defer cancel()
	if err := do(ctx, a, body); err != nil {
		memberChangeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, memberChangeResult(a))
}

// memberChangeError answers a failed change: 400 for a request naming no
// member or malformed, 409 for one the cluster refuses as it stands (a
// lagging learner, a name taken, a rejected change), 503 with Retry-After
// when it may succeed later (no quorum, leadership moved).
func memberChangeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errBadMemberRequest), errors.Is(err, cluster.ErrUnknownMember):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, cluster.ErrLagging), errors.Is(err, cluster.ErrMemberExists), errors.Is(err, cluster.ErrConfRejected):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, cluster.ErrNoQuorum), errors.Is(err, cluster.ErrNotLeader):
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusServiceUnavailable, "membership change: "+err.Error())
	}
}

// forwardToLeader passes r (with body) to the leader's API and copies its
// answer back.
func (s *Server) forwardToLeader(w http.ResponseWriter, r *http.Request, st cluster.Status, body []byte) {
	i := slices.IndexFunc(st.Members, func(m cluster.MemberStatus) bool { return m.ID == st.Leader })
	if st.Leader == 0 || i < 0 || st.Members[i].APIAddr == "" {
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("membership change: member %s knows no leader's API address yet (leader %x); retry", st.Name, st.Leader))
		return
	}
	addr := st.Members[i].APIAddr
	ctx, cancel := context.WithTimeout(r.Context(), DefaultMemberChangeTimeout+5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, "http://"+addr+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	for _, h := range []string{"Content-Type", api.MemberTimeHeader, api.MemberAuthHeader} {
		req.Header.Set(h, r.Header.Get(h))
	}
	req.Header.Set(api.ForwardedHeader, st.Name)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("membership change: pass it to the leader at %s: %v; retry", addr, err))
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Retry-After"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, 4<<20))
}

// memberChangeResult is the membership as a answers it.
func memberChangeResult(a MemberAdmin) api.MemberChangeResult {
	j, mem := a.JoinAnswer(), a.Membership()
	res := api.MemberChangeResult{ClusterID: hexID(j.ClusterID), CommitIndex: j.CommitIndex,
		Voters: hexIDs(mem.Conf.GetVoters()), Learners: hexIDs(mem.Conf.GetLearners()), InitialVoters: hexIDs(j.InitialVoters)}
	for _, r := range j.Members {
		res.Members = append(res.Members, api.MemberInfo{Name: r.Name, ID: hexID(r.ID), PeerAddr: r.PeerAddr, APIAddr: r.APIAddr, StayLearner: r.StayLearner})
	}
	return res
}

func hexIDs(ids []uint64) []string {
	out := []string{}
	for _, id := range ids {
		out = append(out, hexID(id))
	}
	return out
}
