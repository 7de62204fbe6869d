package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
)

// TestReplicaNamesSourceAPI: once the source's API address is known, a
// syncing node's 503 and a replica's 403 say where writes go, and the
// replica's GET /v1/status names its source.
func TestReplicaNamesSourceAPI(t *testing.T) {
	js := &server.JoinStatus{Source: "src:7071", SourceAPI: "src:7070", Phase: transfer.PhaseSnapshot}
	syncing := httptest.NewServer(server.Syncing(func() *server.JoinStatus { return js }))
	defer syncing.Close()
	a := get(t, syncing, http.MethodPut, "/v1/kv/k", "v")
	if msg := a.errorMessage(t); a.status != http.StatusServiceUnavailable || !strings.Contains(msg, "send writes to the source's API at src:7070") {
		t.Errorf("a write while syncing: %d %s", a.status, msg)
	}

	st, err := store.Open(store.Options{Dir: t.TempDir(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	source := func() *api.ReplicaStatus { return &api.ReplicaStatus{Source: "src:7071", SourceAPI: "src:7070"} }
	rep := httptest.NewServer(server.Replica(server.New(st, server.Options{Replica: source}), source))
	defer rep.Close()
	a = get(t, rep, http.MethodPost, "/v1/txn", `{"ops":[]}`)
	if msg := a.errorMessage(t); a.status != http.StatusForbidden || !strings.Contains(msg, "send writes to the source's API at src:7070") ||
		!strings.Contains(msg, "read replica of src:7071") {
		t.Errorf("a write to a replica: %d %s", a.status, msg)
	}
	a = get(t, rep, http.MethodGet, "/v1/status", "")
	var status api.Status
	decodeJSON(t, a.body, &status)
	if status.Replica == nil || *status.Replica != *source() {
		t.Errorf("status names %+v", status.Replica)
	}
}
