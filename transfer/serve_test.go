package transfer

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/internal/xfertest"
)

// startServe runs Serve on a loopback listener until the test ends.
func startServe(t *testing.T, src Source, so ServeOptions) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, src, SendOptions{Secret: testSecret, ChunkSize: testChunk}, so) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// idleConns opens n connections to addr that never say anything.
func idleConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var cs []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	return cs
}

// receiveFrom runs one Receive from addr into a new directory.
func receiveFrom(t *testing.T, addr string, ropts ReceiveOptions) (ReceiveResult, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ropts.Secret = testSecret
	if ropts.Dir == "" {
		ropts.Dir = t.TempDir()
	}
	return Receive(context.Background(), c, ropts)
}

// TestIdleConnectionsDoNotBlockJoins: connections that never authenticate
// (more of them than there are session slots, and than connections may
// wait in their handshake) do not keep a receiver that proves the secret
// from being served at once; they are dropped after the handshake timeout.
func TestIdleConnectionsDoNotBlockJoins(t *testing.T) {
	src := newMemSource(t, 300, 1)
	addr := startServe(t, src, ServeOptions{MaxSessions: 8, MaxPending: 4, HandshakeTimeout: time.Minute})
	idle := idleConns(t, addr, 12)
	res, err := receiveFrom(t, addr, ReceiveOptions{})
	if err != nil || !res.CutOver {
		t.Fatalf("receive past %d idle connections: %+v %v", len(idle), res, err)
	}
	// The oldest idle connections were dropped to make room.
	idle[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(idle[0]); err != nil {
		t.Fatalf("the oldest idle connection was not dropped: %v", err)
	}

	// A short handshake timeout drops an idle connection by itself.
	addr = startServe(t, src, ServeOptions{HandshakeTimeout: 50 * time.Millisecond})
	c := idleConns(t, addr, 1)[0]
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("an idle connection was not dropped after the handshake timeout: %v", err)
	}
}

// TestServeBusy: authenticated sessions beyond MaxSessions are refused
// with a message saying the source is busy; once one ends, a new one is
// served.
func TestServeBusy(t *testing.T) {
	fastCredits(t)
	src := newMemSource(t, 300, 1)
	addr := startServe(t, src, ServeOptions{MaxSessions: 1})
	op := &replicaOpener{xfertest.Replicas{Dir: t.TempDir()}}
	t.Cleanup(func() {
		if st := op.store(); st != nil {
			st.Close()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a follower holds the only slot
		defer wg.Done()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		Receive(ctx, c, ReceiveOptions{Dir: op.Dir, Secret: testSecret, Follow: true, Open: op.open})
	}()
	waitFor(t, "the follower to cut over", func() bool { return op.store() != nil })
	_, err := receiveFrom(t, addr, ReceiveOptions{})
	var pe *PeerError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("second session: %v", err)
	}
	cancel()
	wg.Wait()
	waitFor(t, "a free slot", func() bool {
		_, err := receiveFrom(t, addr, ReceiveOptions{})
		return err == nil
	})
}
