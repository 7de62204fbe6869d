package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingProxy forwards every connection it accepts to target and counts
// them; it stops with the test.
type countingProxy struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		p.wg.Wait()
	})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			d, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, d)
			mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(d, c); d.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, d); c.Close() }()
		}
	}()
	return p
}

// TestServeAdvertisePeer: a member joins with --peer-listen X and
// --advertise-peer P, P a proxy forwarding to X. The cluster records and
// shows P as its peer address, the founding member reaches it through
// the proxy (raft messages and the promotion go through P), and both
// members then commit together. Without the flag's wiring the founding
// member dials X directly: the proxy sees nothing and status shows X.
func TestServeAdvertisePeer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes; skipped with -short")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KVTOOL_TEST_AS_KVTOOL", "1")
	t.Setenv("KVTOOL_SECRET", clusterTestSecret)
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	root := t.TempDir()
	peer1, peer2 := free(), free()
	n1 := startProcess(t, exe, filepath.Join(root, "n1"), "--node", "n1", "--cluster", "n1="+peer1)
	proxy := newCountingProxy(t, peer2)
	adv := proxy.ln.Addr().String()
	n2 := startProcess(t, exe, filepath.Join(root, "n2"), "--node", "n2", "--peer-listen", peer2,
		"--advertise-peer", adv, "--join-cluster", n1.l.ListenAddr)

	waitState(t, "n2 promoted, with the advertised peer address", func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		st, err := n1.c.LocalClusterStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, m := range st.Members {
			if m.Name == "n2" {
				if m.PeerAddr != adv {
					t.Fatalf("the cluster shows n2 at peer address %s, want the advertised %s (its --peer-listen is %s)", m.PeerAddr, adv, peer2)
				}
				return m.Role != "learner", "n2 is " + m.Role
			}
		}
		return false, "n2 is not a member yet"
	})
	if proxy.accepted.Load() == 0 {
		t.Fatalf("n1 never dialed n2 through its advertised address %s", adv)
	}
	// Two voters now: a write commits only with n2's vote, through the proxy.
	ctx, cancel := context.WithTimeout(t.Context(), clusterOpTimeout)
	defer cancel()
	if _, err := n1.c.Put(ctx, "after-join", []byte("x")); err != nil {
		t.Fatalf("write with n2 a voter behind the proxy: %v", err)
	}
	n2.terminate(t)
	n1.terminate(t)
}

// TestServeAdvertisePeerUsage: --advertise-peer must be an address the
// others can dial, and a founding member's must be its --cluster entry;
// the raft log and snapshot flags are bounded and need a cluster member.
func TestServeAdvertisePeerUsage(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", clusterTestSecret)
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--node", "n2", "--peer-listen", "127.0.0.1:0", "--join-cluster", "127.0.0.1:1", "--advertise-peer", "0.0.0.0:7080"},
		{"--node", "n2", "--peer-listen", "127.0.0.1:0", "--join-cluster", "127.0.0.1:1", "--advertise-peer", "proxy:0"},
		{"--node", "n1", "--cluster", "n1=127.0.0.1:7080", "--advertise-peer", "127.0.0.1:9999"},
		{"--advertise-peer", "127.0.0.1:9999"},
		{"--node", "n1", "--cluster", "n1=127.0.0.1:7080", "--snapshot-chunk-size", "1KiB"},
		{"--node", "n1", "--cluster", "n1=127.0.0.1:7080", "--snapshot-window", "1KiB"},
		{"--node", "n1", "--cluster", "n1=127.0.0.1:7080", "--log-retain-entries", "0"},
		{"--snapshot-max-rate", "1MiB"},
	} {
		kvMust(t, exitUsage, "", append([]string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, args...)...)
	}
}
