package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

// httpCluster is three cluster members in process, each with its HTTP API
// on loopback, wired as node/ wires one: cluster.StartMember, then
// server.New with Options.Cluster, then server.Run.
type httpCluster struct {
	t     *testing.T
	names []string
	spec  map[string]string // name -> peer address
	api   map[string]string // name -> API address
	dirs  map[string]string
	mu    sync.Mutex
	nodes map[string]*httpMember
}

// httpMember is one running incarnation of a member.
type httpMember struct {
	st   *store.Store
	m    *cluster.Member
	stop context.CancelFunc
	done chan error
}

func newHTTPCluster(t *testing.T) *httpCluster {
	c := &httpCluster{t: t, spec: map[string]string{}, api: map[string]string{}, dirs: map[string]string{}, nodes: map[string]*httpMember{}}
	peerLns, apiLns := map[string]net.Listener{}, map[string]net.Listener{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprint("n", i)
		c.names = append(c.names, name)
		peerLns[name], apiLns[name] = listenLocal(t), listenLocal(t)
		c.spec[name], c.api[name] = peerLns[name].Addr().String(), apiLns[name].Addr().String()
		c.dirs[name] = t.TempDir()
	}
	for _, name := range c.names {
		c.start(name, peerLns[name], apiLns[name])
	}
	t.Cleanup(func() {
		for _, name := range c.names {
			c.stop(name)
		}
	})
	return c
}

func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// start runs member name on its data directory; nil listeners are opened
// again on the member's addresses (a restart).
func (c *httpCluster) start(name string, peerLn, apiLn net.Listener) {
	c.t.Helper()
	var err error
	if peerLn == nil {
		if peerLn, err = net.Listen("tcp", c.spec[name]); err != nil {
			c.t.Fatal(err)
		}
		if apiLn, err = net.Listen("tcp", c.api[name]); err != nil {
			c.t.Fatal(err)
		}
	}
	st, err := store.Open(store.Options{Dir: c.dirs[name], Create: true, Replica: true, Shards: 4, SegmentSize: 1 << 20})
	if err != nil {
		c.t.Fatal(err)
	}
	m, err := cluster.StartMember(cluster.MemberConfig{
		Name: name, Members: c.spec, PeerListener: peerLn, APIAddr: c.api[name], Secret: []byte("a-test-secret-of-enough-bytes"),
		Node: cluster.Config{Dir: c.dirs[name], Store: st, TickInterval: 10 * time.Millisecond},
	})
	if err != nil {
		st.Close()
		c.t.Fatal(err)
	}
	h := server.New(st, server.Options{Cluster: m, WriteTimeout: time.Second, ReadTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	hm := &httpMember{st: st, m: m, stop: cancel, done: make(chan error, 1)}
	go func() { hm.done <- server.Run(ctx, apiLn, h, server.RunOptions{ShutdownTimeout: 5 * time.Second}) }()
	c.mu.Lock()
	c.nodes[name] = hm
	c.mu.Unlock()
}

// stop shuts member name down as node/ would: the API, then the member,
// then the store.
func (c *httpCluster) stop(name string) {
	c.mu.Lock()
	hm := c.nodes[name]
	delete(c.nodes, name)
	c.mu.Unlock()
	if hm == nil {
		return
	}
	hm.stop()
	if err := <-hm.done; err != nil {
		c.t.Errorf("%s: Run: %v", name, err)
	}
	if err := hm.m.Close(); err != nil {
		c.t.Errorf("%s: close member: %v", name, err)
	}
	if err := hm.st.Close(); err != nil {
		c.t.Errorf("%s: close store: %v", name, err)
	}
}

// client returns a client of member name's API.
func (c *httpCluster) client(name string) *client.Client {
	cl := client.New(c.api[name])
	c.t.Cleanup(cl.Close)
	return cl
}

// leader waits until every member names the same leader over HTTP.
func (c *httpCluster) leader() string {
	c.t.Helper()
	var lead string
	waitUntil(c.t, "a leader every member names", func() bool {
		lead = ""
		for _, name := range c.names {
			st, err := c.client(name).LocalClusterStatus(c.t.Context())
			if err != nil || st.Leader == "" || (lead != "" && st.Leader != lead) {
				return false
			}
			lead = st.Leader
		}
		return true
	})
	return lead
}

// converged waits until every member answers the same applied index and
// state hash, and returns the hash.
func (c *httpCluster) converged() api.HashResult {
	c.t.Helper()
	var first api.HashResult
	waitUntil(c.t, "every member to hold the same state", func() bool {
		for i, name := range c.names {
			h, err := c.client(name).Hash(c.t.Context())
			if err != nil {
				return false
			}
			if i == 0 {
				first = *h
			} else if *h != first {
				return false
			}
		}
		return true
	})
	return first
}

// raw sends one request to member name's API and reads the answer whole.
func (c *httpCluster) raw(name, method, path, body string, hdr map[string]string) answer {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://"+c.api[name]+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s on %s: %v", method, path, name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func others(names []string, not ...string) []string {
	var out []string
	for _, n := range names {
		skip := false
		for _, x := range not {
			skip = skip || n == x
		}
		if !skip {
			out = append(out, n)
		}
	}
	return out
}

const addOne = `{"ops": [{"op": "add", "key": "counter", "delta": 1}]}`

// TestClusterHTTP runs three members with their HTTP APIs and checks the
// cluster contract over HTTP: a write to a follower is answered once
// applied there (readable on it at once), a retried request ID applies
// once, the reserved keys are refused and hidden from scans, status,
// /v1/cluster, metrics and transfer-leader work, and a minority answers
// 503 with Retry-After (writes and linearizable reads) while local reads
// go on; the client's retry of that write succeeds once the cluster heals.
func TestClusterHTTP(t *testing.T) {
	c := newHTTPCluster(t)
	ctx := t.Context()
	lead := c.leader()
	followers := others(c.names, lead)

	t.Run("write to a follower, read it there", func(t *testing.T) {
		for i, f := range followers {
			key, val := fmt.Sprint("k", i), fmt.Sprint("v", i)
			idx, err := c.client(f).Put(ctx, key, []byte(val))
			if err != nil {
				t.Fatalf("put on follower %s: %v", f, err)
			}
			a := c.raw(f, http.MethodGet, client.KeyPath(key), "", nil)
			if a.status != http.StatusOK || string(a.body) != val || indexHeader(a) < idx {
				t.Fatalf("get on %s right after its write at %d: %d %q index %d", f, idx, a.status, a.body, indexHeader(a))
			}
			other := followers[(i+1)%len(followers)]
			v, _, err := c.client(other).GetWith(ctx, key, client.ReadOptions{Linearizable: true})
			if err != nil || string(v) != val {
				t.Fatalf("linearizable get on %s: %q, %v", other, v, err)
			}
		}
		if _, err := c.client(followers[0]).Txn(ctx, api.PutOp("t1", "a"), api.AddOp("acct", 5)); err != nil {
			t.Fatalf("txn on a follower: %v", err)
		}
	})

	t.Run("a retried request ID applies once", func(t *testing.T) {
		var first uint64
		for i, name := range append(c.names, c.names...) {
			a := c.raw(name, http.MethodPost, "/v1/txn", addOne, map[string]string{api.RequestIDHeader: "retry-me"})
			var res api.IndexResult
			if a.status != http.StatusOK || json.Unmarshal(a.body, &res) != nil {
				t.Fatalf("attempt %d on %s: %d %s", i, name, a.status, a.body)
			}
			if i == 0 {
				first = res.Index
			} else if res.Index != first || a.header.Get(api.DuplicateHeader) != "true" {
				t.Fatalf("attempt %d on %s: index %d duplicate %q, want %d and a duplicate", i, name, res.Index, a.header.Get(api.DuplicateHeader), first)
			}
		}
		for _, name := range c.names {
			if v, _, err := c.client(name).GetWith(ctx, "counter", client.ReadOptions{Linearizable: true}); err != nil || string(v) != "1" {
				t.Fatalf("counter on %s after six attempts of one request: %q, %v", name, v, err)
			}
		}
	})

	t.Run("reserved keys", func(t *testing.T) {
		a := c.raw(lead, http.MethodPut, client.KeyPath(cluster.DedupPrefix+"id/x"), "1", nil)
		if a.status != http.StatusBadRequest || !strings.Contains(a.errorMessage(t), "reserved") {
			t.Fatalf("write under the reserved prefix: %d %s", a.status, a.body)
		}
		var keys []string
		if err := c.client(lead).Scan(ctx, client.ScanOptions{}, func(p api.Pair) bool { keys = append(keys, p.Key); return true }); err != nil {
			t.Fatal(err)
		}
		st, err := c.client(lead).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.HasPrefix(k, cluster.DedupPrefix) {
				t.Fatalf("scan shows reserved key %q", k)
			}
		}
		if len(keys) != 5 || st.Keys <= len(keys) { // k0 k1 t1 acct counter, and the dedup table besides
			t.Fatalf("scan: %q; status counts %d keys", keys, st.Keys)
		}
	})

	t.Run("status, cluster, metrics", func(t *testing.T) {
		c.converged()
		st, err := c.client(followers[0]).Status(ctx)
		if err != nil || st.Cluster == nil || len(st.Cluster.Members) != 3 || st.Cluster.Leader != lead || st.Cluster.Name != followers[0] {
			t.Fatalf("/v1/status on %s: %+v, %v", followers[0], st.Cluster, err)
		}
		waitUntil(t, "a full view of the cluster from a follower", func() bool {
			cs, err := c.client(followers[0]).ClusterStatus(ctx)
			if err != nil || cs.Leader != lead {
				return false
			}
			for _, m := range cs.Members {
				wantRole := "follower"
				if m.Name == lead {
					wantRole = "leader"
				}
				if m.Role != wantRole || m.APIAddr != c.api[m.Name] || m.PeerAddr != c.spec[m.Name] || m.AppliedIndex == nil ||
					m.Lag == nil || *m.Lag != 0 || m.MatchIndex == 0 || m.Error != "" {
					return false
				}
			}
			return true
		})
		// The leader's view: each follower's lease on its raft log, in the
		// status and in the leases table.
		cs, err := c.client(lead).ClusterStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cs.Members {
			if m.Name != lead && (m.LeaseState != "active" || m.PinnedIndex == 0 || m.PinnedIndex > m.MatchIndex || m.LeaseExpires == "") {
				t.Errorf("leader's status of %s: %+v, want its lease (the log after its match, expiry)", m.Name, m)
			}
		}
		var peers []string
		if _, err := c.client(lead).Query(ctx, client.QueryRequest{SQL: "SELECT peer FROM leases WHERE peer LIKE 'raft:%' ORDER BY peer"},
			func(client.QueryHeader) error { return nil },
			func(r []any) error { peers = append(peers, fmt.Sprint(r[0])); return nil }); err != nil {
			t.Fatal(err)
		}
		if want := []string{"raft:" + followers[0], "raft:" + followers[1]}; !slices.Equal(peers, want) && !slices.Equal(peers, []string{want[1], want[0]}) {
			t.Errorf("leader's leases table: raft rows %q, want %q", peers, want)
		}
		metrics := string(c.raw(lead, http.MethodGet, "/metrics", "", nil).body)
		for _, want := range []string{"kvtool_cluster_term ", "kvtool_cluster_is_leader 1", `kvtool_cluster_proposals_total{result="ok"}`,
			`kvtool_cluster_peer_round_trip_seconds{peer="` + followers[0] + `"}`, "kvtool_cluster_apply_lag_entries", "kvtool_cluster_snapshot_sends_total",
			"kvtool_cluster_refused_messages_total 0"} {
			if !strings.Contains(metrics, want) {
				t.Errorf("leader's /metrics lacks %q", want)
			}
		}
	})

	t.Run("transfer leader", func(t *testing.T) {
		to := followers[1]
		res, err := c.client(followers[0]).TransferLeader(ctx, to)
		if err != nil || res.Leader != to {
			t.Fatalf("transfer-leader to %s through %s: %+v, %v", to, followers[0], res, err)
		}
		if lead = c.leader(); lead != to {
			t.Fatalf("leader after the transfer: %s, want %s", lead, to)
		}
		a := c.raw(lead, http.MethodPost, "/v1/cluster/transfer-leader", `{"to": "n9"}`, nil)
		if a.status != http.StatusBadRequest || !strings.Contains(a.errorMessage(t), "n9") {
			t.Fatalf("transfer to a stranger: %d %s", a.status, a.body)
		}
		for _, body := range []string{"", "n2", `{"to": "n2", "x": 1}`} {
			if a := c.raw(lead, http.MethodPost, "/v1/cluster/transfer-leader", body, nil); a.status != http.StatusBadRequest {
				t.Fatalf("transfer-leader with body %q: %d %s", body, a.status, a.body)
			}
		}
	})

	t.Run("a minority answers 503, and heals", func(t *testing.T) {
		lone := lead
		gone := others(c.names, lone)
		for _, name := range gone {
			c.stop(name)
		}
		a := c.raw(lone, http.MethodPost, "/v1/txn", addOne, map[string]string{api.RequestIDHeader: "during-partition"})
		if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" || !strings.Contains(a.errorMessage(t), "quorum") {
			t.Fatalf("write on a minority: %d %q, Retry-After %q", a.status, a.body, a.header.Get("Retry-After"))
		}
		a = c.raw(lone, http.MethodGet, client.KeyPath("counter")+"?consistency=linearizable", "", nil)
		if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
			t.Fatalf("linearizable read on a minority: %d %q", a.status, a.body)
		}
		if a = c.raw(lone, http.MethodGet, client.KeyPath("counter"), "", nil); a.status != http.StatusOK || string(a.body) != "1" {
			t.Fatalf("local read on a minority: %d %q", a.status, a.body)
		}
		// The client retries the 503 with one request ID; heal once it got
		// one.
		cl := c.client(lone)
		cl.SetWriteRetries(60)
		refused := c.noQuorumAnswers(lone)
		done := make(chan error, 1)
		go func() {
			_, err := cl.TxnJSON(ctx, strings.NewReader(addOne))
			done <- err
		}()
		waitUntil(t, "the client's write to be answered 503", func() bool { return c.noQuorumAnswers(lone) > refused })
		for _, name := range gone {
			c.start(name, nil, nil)
		}
		if err := <-done; err != nil {
			t.Fatalf("the client's retried write after healing: %v", err)
		}
		// The raw request above, retried by hand with its ID now.
		if a := c.raw(gone[0], http.MethodPost, "/v1/txn", addOne, map[string]string{api.RequestIDHeader: "during-partition"}); a.status != http.StatusOK {
			t.Fatalf("retry of the partitioned write: %d %s", a.status, a.body)
		}
		c.converged()
		for _, name := range c.names {
			if v, _, err := c.client(name).Get(ctx, "counter"); err != nil || string(v) != "3" {
				t.Fatalf("counter on %s: %q, %v; want 3 (1 + the client's write once + the partitioned write once)", name, v, err)
			}
		}
	})
}

func indexHeader(a answer) uint64 {
	var n uint64
	fmt.Sscan(a.header.Get(api.IndexHeader), &n)
	return n
}

// noQuorumAnswers is the count of writes member name answered 503 for want
// of a quorum, from its /metrics.
func (c *httpCluster) noQuorumAnswers(name string) int {
	c.t.Helper()
	const series = `kvtool_commits_total{result="no_quorum"} `
	for _, line := range strings.Split(string(c.raw(name, http.MethodGet, "/metrics", "", nil).body), "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	return 0
}
