package node_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/node"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/transfer"
)

var testSecret = func() transfer.Secret {
	s, err := transfer.NewSecret([]byte("the node tests' shared secret..."))
	if err != nil {
		panic(err)
	}
	return s
}()

// waitUntil polls cond until it holds, failing after a generous deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReplicaNamesSourceAPI: a node that joined another refuses writes
// naming the source's HTTP API (not the transfer port it follows), shows
// it in /v1/status and /v1/transfers, and still names it after a restart
// while the source is down.
func TestReplicaNamesSourceAPI(t *testing.T) {
	src := start(t, node.Config{Dir: t.TempDir(), TransferListen: "127.0.0.1:0", Secret: testSecret})
	sc := client.New(src.l.APIAddr)
	defer sc.Close()
	if _, err := sc.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "replica")
	cfg := node.Config{Dir: dir, Join: src.l.TransferAddr, Secret: testSecret}
	rep := start(t, cfg)
	rc := client.New(rep.l.APIAddr)
	defer rc.Close()
	waitUntil(t, "the replica to serve k", func() bool { v, _, err := rc.Get(t.Context(), "k"); return err == nil && string(v) == "v" })
	checkRefusal(t, rc, src.l.APIAddr, src.l.TransferAddr)

	st, err := rc.Status(t.Context())
	if err != nil || st.Replica == nil || st.Replica.SourceAPI != src.l.APIAddr || st.Replica.Source != src.l.TransferAddr {
		t.Fatalf("replica status %+v, %v", st.Replica, err)
	}
	var ts server.TransfersStatus
	if err := rc.Transfers(t.Context(), &ts); err != nil || ts.Join == nil || ts.Join.SourceAPI != src.l.APIAddr {
		t.Fatalf("transfers %+v, %v", ts.Join, err)
	}

	// Restarted while the source is down: the record in its directory
	// still says where writes go.
	if err := rep.wait(t); err != nil {
		t.Fatal(err)
	}
	if err := src.wait(t); err != nil {
		t.Fatal(err)
	}
	rep = start(t, cfg)
	rc2 := client.New(rep.l.APIAddr)
	defer rc2.Close()
	checkRefusal(t, rc2, src.l.APIAddr, src.l.TransferAddr)
}

// checkRefusal checks that a write to the replica behind c is refused with
// a message naming the source's API.
func checkRefusal(t *testing.T, c *client.Client, api, transferAddr string) {
	t.Helper()
	_, err := c.Put(t.Context(), "w", []byte("x"))
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusForbidden || !strings.Contains(ce.Message, "send writes to the source's API at "+api) ||
		!strings.Contains(ce.Message, transferAddr) {
		t.Fatalf("a write to the replica: %v; want 403 naming the source's API %s", err, api)
	}
}

// joinLogCheck is a slog handler that, on the record saying the member
// was added to the cluster, checks that DATA/raft/JOIN already holds the
// join (a crash right after the log line must not make the member ask to
// be added again).
type joinLogCheck struct {
	dir    string
	mu     sync.Mutex
	saw    bool
	stored bool
}

func (h *joinLogCheck) Enabled(context.Context, slog.Level) bool { return true }
func (h *joinLogCheck) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *joinLogCheck) WithGroup(string) slog.Handler            { return h }
func (h *joinLogCheck) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "added to the cluster") {
		_, ok, err := cluster.ReadJoin(nil, h.dir)
		h.mu.Lock()
		h.saw, h.stored = true, ok && err == nil
		h.mu.Unlock()
	}
	return nil
}

// TestJoinRecordedBeforeAdded: a member joining with JoinCluster has its
// JOIN record on disk by the time it logs that it was added.
func TestJoinRecordedBeforeAdded(t *testing.T) {
	secret := []byte("a shared secret of the members")
	peer := freePeerAddrs(t, 2)
	first := start(t, node.Config{Dir: filepath.Join(t.TempDir(), "n1"), Cluster: &node.ClusterConfig{
		Name: "n1", Members: map[string]string{"n1": peer[0]}, Secret: secret}})
	dir := filepath.Join(t.TempDir(), "n2")
	h := &joinLogCheck{dir: dir}
	start(t, node.Config{Dir: dir, Logger: slog.New(h), Cluster: &node.ClusterConfig{
		Name: "n2", PeerListen: peer[1], JoinCluster: first.l.APIAddr, Secret: secret}})
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.saw || !h.stored {
		t.Fatalf("logged that it was added: %v; JOIN on disk then: %v", h.saw, h.stored)
	}
}
