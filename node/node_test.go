package node_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/internal/loopport"
	"github.com/kvtool/kvtool/node"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// running is a node run by a test: its listening event and Run's result.
type running struct {
	l      node.Listening
	stop   context.CancelFunc
	done   chan error
	stored chan uint64 // Events.Stopped
}

// start runs cfg until the test ends (or stop), and waits until it
// listens.
func start(t *testing.T, cfg node.Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stop: cancel, done: make(chan error, 1), stored: make(chan uint64, 1)}
	listening := make(chan node.Listening, 1)
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	cfg.Events.Listening = func(l node.Listening) error { listening <- l; return nil }
	cfg.Events.Stopped = func(i uint64) { r.stored <- i }
	go func() { r.done <- node.Run(ctx, cfg) }()
	t.Cleanup(func() { r.wait(t) })
	select {
	case r.l = <-listening:
	case err := <-r.done:
		r.done <- err
		t.Fatalf("Run ended before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not listen")
	}
	return r
}

// wait stops the node and returns Run's error.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	r.stop()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not stop")
		return nil
	}
}

func TestRunServesThenStopsInOrder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	r := start(t, node.Config{Dir: dir, Shards: 4})
	if r.l.StoreID == "" || r.l.Shards != 4 || r.l.DataDir != dir || r.l.TransferAddr != "" {
		t.Fatalf("listening %+v", r.l)
	}
	c := client.New(r.l.APIAddr)
	defer c.Close()
	if _, err := c.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if applied := <-r.stored; applied != 1 {
		t.Errorf("stopped at %d, want 1", applied)
	}
	// The store was closed: another process may open it, and finds the put.
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatalf("reopen after Run: %v", err)
	}
	defer st.Close()
	if v, ok := st.Snapshot().Get("k"); !ok || string(v) != "v" {
		t.Errorf("k = %q, %v", v, ok)
	}
}

// TestRunListenErrorTouchesNothing: a port in use fails before the data
// directory is created, naming the part and the address.
func TestRunListenErrorTouchesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		cfg  node.Config
		part node.Part
	}{
		{node.Config{Listen: busy.Addr().String()}, node.PartAPI},
		{node.Config{Listen: "127.0.0.1:0", TransferListen: busy.Addr().String()}, node.PartTransfers},
	} {
		c.cfg.Dir = filepath.Join(t.TempDir(), "data")
		err := node.Run(t.Context(), c.cfg)
		var ne *node.Error
		if !errors.As(err, &ne) || ne.Part != c.part || ne.Op != node.OpListen || ne.Addr != busy.Addr().String() {
			t.Errorf("%s: Run = %#v, want a listen error of %q", c.part, err, c.part)
		}
		if _, err := os.Stat(c.cfg.Dir); !os.IsNotExist(err) {
			t.Errorf("%s: the data directory was created", c.part)
		}
	}
}

// TestRunListeningErrorStops: an error of Events.Listening stops the node
// before it serves, and closes the store.
func TestRunListeningErrorStops(t *testing.T) {
	dir := t.TempDir()
	stop := errors.New("cannot print")
	err := node.Run(t.Context(), node.Config{Dir: dir, Listen: "127.0.0.1:0",
		Events: node.Events{Listening: func(node.Listening) error { return stop }}})
	if err != stop {
		t.Fatalf("Run = %v, want the event's error as is", err)
	}
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatalf("the store was left open: %v", err)
	}
	st.Close()
}

func TestRunRefusesBadClusterConfig(t *testing.T) {
	members := map[string]string{"n1": "127.0.0.1:1", "n2": "127.0.0.1:2", "n3": "127.0.0.1:3"}
	secret := []byte("0123456789abcdef0123")
	for name, cfg := range map[string]node.Config{
		"wildcard API": {Listen: "0.0.0.0:0", Cluster: &node.ClusterConfig{Name: "n1", Members: members, Secret: secret}},
		"not a member": {Listen: "127.0.0.1:0", Cluster: &node.ClusterConfig{Name: "n4", Members: members, Secret: secret}},
		"join":         {Listen: "127.0.0.1:0", Join: "127.0.0.1:9", Cluster: &node.ClusterConfig{Name: "n1", Members: members, Secret: secret}},
	} {
		cfg.Dir = filepath.Join(t.TempDir(), "data")
		if err := node.Run(t.Context(), cfg); !errors.Is(err, node.ErrBadConfig) {
			t.Errorf("%s: Run = %v, want ErrBadConfig", name, err)
		}
		if _, err := os.Stat(cfg.Dir); !os.IsNotExist(err) {
			t.Errorf("%s: the refused node created its directory (%v)", name, err)
		}
	}
}

// freePeerAddrs returns n distinct loopback addresses whose ports were
// free a moment ago, below the ephemeral range (loopport): a cluster's peer
// addresses must be known up front.
func freePeerAddrs(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		addr, err := loopport.Free()
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, addr)
	}
	return addrs
}

// TestRunClusterMembers runs three members in this process: each
// announces its name and peer address, a write on any member is read back
// on every member, and each stops cleanly.
func TestRunClusterMembers(t *testing.T) {
	addrs := freePeerAddrs(t, 3)
	names := []string{"n1", "n2", "n3"}
	members := map[string]string{}
	for i, name := range names {
		members[name] = addrs[i]
	}
	secret := []byte("a shared secret of the members")
	var nodes []*running
	for _, name := range names {
		r := start(t, node.Config{Dir: filepath.Join(t.TempDir(), name), Cluster: &node.ClusterConfig{
			Name: name, Members: members, Secret: secret}})
		if r.l.Node != name || r.l.PeerAddr != members[name] || r.l.StoreID == "" {
			t.Fatalf("%s listening %+v", name, r.l)
		}
		nodes = append(nodes, r)
	}
	var clients []*client.Client
	for _, r := range nodes {
		c := client.New(r.l.APIAddr)
		defer c.Close()
		clients = append(clients, c)
	}
	for i, c := range clients {
		key := "k" + names[i]
		if _, err := c.Put(t.Context(), key, []byte(names[i])); err != nil {
			t.Fatalf("put on %s: %v", names[i], err)
		}
	}
	for i, c := range clients {
		for _, name := range names {
			waitValue(t, c, "k"+name, name, names[i])
		}
		st, err := c.Status(t.Context())
		if err != nil || st.Cluster == nil || st.Cluster.Name != names[i] {
			t.Fatalf("status of %s: %+v, %v", names[i], st, err)
		}
	}
	for i, r := range nodes {
		if err := r.wait(t); err != nil {
			t.Errorf("stop %s: %v", names[i], err)
		}
	}
}

// waitValue waits until c reads want at key (a member applies a write
// acknowledged elsewhere once it learns it is committed).
func waitValue(t *testing.T, c *client.Client, key, want, on string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, _, err := c.Get(t.Context(), key)
		if err == nil && string(v) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s = %q, %v; want %q", on, key, v, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunClusterMemberFailStops: once a member's disk fails an fsync of its
// raft log, its Run returns an *Error naming the cluster member (fail
// stop), and the other two members go on committing.
func TestRunClusterMemberFailStops(t *testing.T) {
	addrs := freePeerAddrs(t, 3)
	names := []string{"n1", "n2", "n3"}
	members := map[string]string{"n1": addrs[0], "n2": addrs[1], "n3": addrs[2]}
	badDir := filepath.Join(t.TempDir(), "n3")
	var broken atomic.Bool
	faulty := vfs.NewErrorFS(vfs.Default, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if broken.Load() && op == vfs.OpSync && strings.HasPrefix(path, filepath.Join(badDir, "raft")) {
			return fmt.Errorf("%w: fsync %s", vfs.ErrInjected, path)
		}
		return nil
	}))
	var nodes []*running
	for _, name := range names {
		cfg := node.Config{Dir: filepath.Join(t.TempDir(), name), Cluster: &node.ClusterConfig{
			Name: name, Members: members, Secret: []byte("a shared secret of the members")}}
		if name == "n3" {
			cfg.Dir, cfg.FS = badDir, faulty
		}
		nodes = append(nodes, start(t, cfg))
	}
	c := client.New(nodes[0].l.APIAddr)
	defer c.Close()
	if _, err := c.Put(t.Context(), "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	broken.Store(true)
	if _, err := c.Put(t.Context(), "after", []byte("2")); err != nil {
		t.Fatalf("the two healthy members must still commit: %v", err)
	}
	var err error
	select {
	case err = <-nodes[2].done:
		nodes[2].done <- err
	case <-time.After(60 * time.Second):
		t.Fatal("the member whose disk failed did not stop")
	}
	var ne *node.Error
	if !errors.As(err, &ne) || ne.Part != node.PartCluster || ne.Op != node.OpServe || !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Run of the failed member = %v, want a cluster member *Error wrapping the fsync error", err)
	}
	if _, err := c.Put(t.Context(), "later", []byte("3")); err != nil {
		t.Fatalf("the two healthy members must go on: %v", err)
	}
}
