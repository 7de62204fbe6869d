package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

// startCluster runs three cluster members in process, each with its HTTP
// API on loopback, and returns their API addresses by name.
func startCluster(t *testing.T) map[string]string {
	t.Helper()
	spec, peerLns, apiLns := map[string]string{}, map[string]net.Listener{}, map[string]net.Listener{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprint("n", i)
		for _, lns := range []map[string]net.Listener{peerLns, apiLns} {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			lns[name] = ln
		}
		spec[name] = peerLns[name].Addr().String()
	}
	apis := map[string]string{}
	for name := range spec {
		dir := t.TempDir()
		st, err := store.Open(store.Options{Dir: dir, Create: true, Replica: true, Shards: 4, SegmentSize: 256 << 10})
		if err != nil {
			t.Fatal(err)
		}
		apis[name] = apiLns[name].Addr().String()
		m, err := cluster.StartMember(cluster.MemberConfig{Name: name, Members: spec, PeerListener: peerLns[name], APIAddr: apis[name],
			Secret: []byte("a-cli-test-secret-16+"), Node: cluster.Config{Dir: dir, Store: st, TickInterval: 10 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		srv := &httptest.Server{Listener: apiLns[name], Config: &http.Server{Handler: server.New(st, server.Options{Cluster: m})}}
		srv.Start()
		t.Cleanup(func() { srv.Close(); m.Close(); st.Close() })
	}
	return apis
}

// clusterView waits until the member at addr names a leader and has heard
// from every member, and returns its view.
func clusterView(t *testing.T, addr string) *api.ClusterStatus {
	t.Helper()
	c := client.New(addr)
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.ClusterStatus(t.Context())
		complete := err == nil && st.Leader != ""
		for _, m := range st.Members {
			complete = complete && m.AppliedIndex != nil
		}
		if complete {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete view of the cluster from %s: %+v, %v", addr, st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClusterCommands(t *testing.T) {
	apis := startCluster(t)
	view := clusterView(t, apis["n1"])
	lead := view.Leader

	stdout, _ := kvMust(t, exitOK, "", "cluster", "status", "--addr", apis["n1"])
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "leader "+lead) || strings.Join(strings.Fields(lines[1]), " ") != "NAME ID ROLE PEER API MATCH APPLIED LAG LEASE PINNED PINNED-SIZE" {
		t.Fatalf("cluster status:\n%s", stdout)
	}
	for i, name := range []string{"n1", "n2", "n3"} {
		f := strings.Fields(lines[2+i])
		role := "follower"
		if name == lead {
			role = "leader"
		}
		if len(f) != 11 || f[0] != name || f[1] != fmt.Sprintf("%016x", cluster.MemberID(name)) || f[2] != role || f[4] != apis[name] || f[6] == "-" {
			t.Fatalf("row of %s: %q", name, lines[2+i])
		}
		// n1's view: it holds a lease for every other member if it leads, for none if not.
		if hasLease := f[8] != "-"; hasLease != (lead == "n1" && name != "n1") {
			t.Fatalf("row of %s in %s's view (leader %s): lease %q", name, "n1", lead, lines[2+i])
		}
	}
	stdout, _ = kvMust(t, exitOK, "", "cluster", "status", "--addr", apis["n2"], "--json")
	var st api.ClusterStatus
	if err := json.Unmarshal([]byte(stdout), &st); err != nil || st.Name != "n2" || len(st.Members) != 3 || st.Leader != lead {
		t.Fatalf("cluster status --json: %v\n%s", err, stdout)
	}

	to := "n1"
	if lead == to {
		to = "n2"
	}
	if stdout, _ = kvMust(t, exitOK, "", "cluster", "transfer-leader", "--addr", apis["n3"], "--to", to); stdout != to+" is the leader (term "+fmt.Sprint(clusterView(t, apis["n3"]).Term)+")\n" {
		t.Fatalf("transfer-leader: %q", stdout)
	}
	if v := clusterView(t, apis["n1"]); v.Leader != to {
		t.Fatalf("leader after transfer-leader --to %s: %s", to, v.Leader)
	}
	kvMust(t, exitUsage, "", "cluster", "transfer-leader", "--addr", apis["n3"], "--to", "n9")
	kvMust(t, exitUsage, "", "cluster", "transfer-leader", "--addr", apis["n3"])
	kvMust(t, exitUsage, "", "cluster", "status")

	kvMust(t, exitOK, "", "put", "--addr", apis["n2"], "greeting", "hello")
	reads := clusterView(t, apis["n3"]).ReadIndexes
	if stdout, _ = kvMust(t, exitOK, "", "get", "--addr", apis["n3"], "--linearizable", "greeting"); stdout != "hello" {
		t.Fatalf("get --linearizable on another member: %q", stdout)
	}
	if n := clusterView(t, apis["n3"]).ReadIndexes; n != reads+1 {
		t.Fatalf("get --linearizable made %d ReadIndex reads, want 1", n-reads)
	}

	single := kvTargets(t)["addr"]
	_, stderr := kvMust(t, exitFailure, "", append([]string{"cluster", "status"}, single...)...)
	if !strings.Contains(stderr, "not a cluster member") {
		t.Fatalf("cluster status of a single server: %s", stderr)
	}
}
