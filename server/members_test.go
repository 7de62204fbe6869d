package server_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/cluster"
)

// signed returns the headers of a membership change signed with secret.
func signed(secret, method, path, body string) map[string]string {
	now := time.Now().Unix()
	return map[string]string{
		api.MemberTimeHeader: strconv.FormatInt(now, 10),
		api.MemberAuthHeader: cluster.MemberChangeMAC([]byte(secret), method, path, now, []byte(body)),
	}
}

// TestClusterMembersHTTP: membership changes over the API are refused
// unsigned or signed with another secret (403); through a follower they
// reach the leader: a learner is added (200, listed), its promotion is
// refused while it lags (409: it never runs), an unknown member is a 400,
// and it is removed (200, gone).
func TestClusterMembersHTTP(t *testing.T) {
	c := newHTTPCluster(t)
	lead := c.leader()
	f := others(c.names, lead)[0]
	const secret = "a-test-secret-of-enough-bytes"
	add := `{"name": "n9", "peer_addr": "127.0.0.1:1", "stay_learner": true}`
	post, del := http.MethodPost, http.MethodDelete

	if a := c.raw(f, post, "/v1/cluster/members", add, nil); a.status != http.StatusForbidden {
		t.Fatalf("unsigned add: %d %s", a.status, a.body)
	}
	if a := c.raw(f, post, "/v1/cluster/members", add, signed("another secret of enough bytes", post, "/v1/cluster/members", add)); a.status != http.StatusForbidden {
		t.Fatalf("add signed with another secret: %d %s", a.status, a.body)
	}
	a := c.raw(f, post, "/v1/cluster/members", add, signed(secret, post, "/v1/cluster/members", add))
	var res api.MemberChangeResult
	if a.status != http.StatusOK || json.Unmarshal(a.body, &res) != nil {
		t.Fatalf("add n9 through follower %s: %d %s", f, a.status, a.body)
	}
	id9 := hexOf(cluster.MemberID("n9"))
	if !slices.Contains(res.Learners, id9) || !slices.ContainsFunc(res.Members, func(m api.MemberInfo) bool { return m.Name == "n9" }) {
		t.Fatalf("after the add: %s", a.body)
	}
	p := "/v1/cluster/members/n9/promote"
	if a := c.raw(f, post, p, "", signed(secret, post, p, "")); a.status != http.StatusConflict {
		t.Fatalf("promote of a learner that never ran, through follower %s: %d %s", f, a.status, a.body)
	}
	p = "/v1/cluster/members/nope/promote"
	if a := c.raw(f, post, p, "", signed(secret, post, p, "")); a.status != http.StatusBadRequest {
		t.Fatalf("promote of no member: %d %s", a.status, a.body)
	}
	p = "/v1/cluster/members/" + f + "/replace-with/n9"
	if a := c.raw(f, post, p, "", signed(secret, post, p, "")); a.status != http.StatusConflict {
		t.Fatalf("replace %s by a learner that never ran: %d %s", f, a.status, a.body)
	}
	p = "/v1/cluster/members/" + f + "/replace-with/nope"
	if a := c.raw(f, post, p, "", signed(secret, post, p, "")); a.status != http.StatusBadRequest {
		t.Fatalf("replace by no member: %d %s", a.status, a.body)
	}
	p = "/v1/cluster/members/n9"
	a = c.raw(f, del, p, "", signed(secret, del, p, ""))
	res = api.MemberChangeResult{}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &res) != nil || slices.Contains(res.Learners, id9) {
		t.Fatalf("remove n9: %d %s", a.status, a.body)
	}
}

func hexOf(id uint64) string { return leftPad(strconv.FormatUint(id, 16)) }

func leftPad(s string) string {
	for len(s) < 16 {
		s = "0" + s
	}
	return s
}
