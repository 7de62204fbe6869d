package transfer

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// plainConn hides a connection's deadlines: a byte stream that can only
// be read, written and closed, like a pipe or a wrapped stream.
type plainConn struct{ c net.Conn }

func (p plainConn) Read(b []byte) (int, error)  { return p.c.Read(b) }
func (p plainConn) Write(b []byte) (int, error) { return p.c.Write(b) }
func (p plainConn) Close() error                { return p.c.Close() }

// settles waits until no more goroutines run than base, failing with
// their stacks after a generous deadline.
func settles(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			var ours []string
			for _, g := range strings.Split(string(buf[:n]), "\n\n") {
				if strings.Contains(g, "kvtool/transfer.") && !strings.Contains(g, "testing.tRunner") {
					ours = append(ours, g)
				}
			}
			t.Fatalf("%d goroutines still run, %d before:\n%s", runtime.NumGoroutine(), base, strings.Join(ours, "\n\n"))
		}
		time.Sleep(time.Millisecond)
	}
}

// returns waits for done, failing if it does not come within a generous
// deadline (a call that cancellation cannot end).
func returns(t *testing.T, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return after its context was cancelled", what)
		return nil
	}
}

// TestNoGoroutineLeakWithoutDeadlines: over connections that take no
// deadline, a finished Send and Receive leave no goroutine behind even
// though neither caller closed its end, and cancelling either one ends it
// while its peer is silent.
func TestNoGoroutineLeakWithoutDeadlines(t *testing.T) {
	src := newMemSource(t, 1000, 1)
	t.Run("finished", func(t *testing.T) {
		a, b := tcpPair(t)
		base := runtime.NumGoroutine()
		sopts, ropts := smallOpts(t.TempDir())
		sopts.Secret, ropts.Secret = testSecret, testSecret
		sent := make(chan error, 1)
		go func() {
			_, err := Send(context.Background(), plainConn{a}, src, sopts)
			sent <- err
		}()
		if _, err := Receive(context.Background(), plainConn{b}, ropts); err != nil {
			t.Fatalf("receive: %v", err)
		}
		if err := <-sent; err != nil {
			t.Fatalf("send: %v", err)
		}
		settles(t, base)
	})
	t.Run("receive cancelled", func(t *testing.T) {
		_, b := tcpPair(t) // the sender's end never speaks
		base := runtime.NumGoroutine()
		_, ropts := smallOpts(t.TempDir())
		ropts.Secret = testSecret
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := Receive(ctx, plainConn{b}, ropts)
			done <- err
		}()
		cancel()
		if err := returns(t, "Receive", done); !errors.Is(err, context.Canceled) {
			t.Fatalf("receive: %v", err)
		}
		settles(t, base)
	})
	t.Run("send cancelled in the handshake", func(t *testing.T) {
		a, _ := tcpPair(t) // the receiver's end never speaks
		base := runtime.NumGoroutine()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := Send(ctx, plainConn{a}, src, SendOptions{Secret: testSecret})
			done <- err
		}()
		cancel()
		if err := returns(t, "Send", done); !errors.Is(err, context.Canceled) {
			t.Fatalf("send: %v", err)
		}
		settles(t, base)
	})
	t.Run("send cancelled mid-stream", func(t *testing.T) {
		a, b := tcpPair(t)
		base := runtime.NumGoroutine()
		sopts, ropts := smallOpts(t.TempDir())
		sopts.Secret, ropts.Secret = testSecret, testSecret
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		sopts.MaxRate = 32 << 10 // a few seconds for the whole snapshot
		sopts.Progress = func(p Progress) {
			if p.BytesSent > 0 {
				cancel() // chunks are flowing: stop mid-stream
			}
		}
		go func() {
			_, err := Send(ctx, plainConn{a}, src, sopts)
			done <- err
		}()
		rctx, rcancel := context.WithCancel(context.Background())
		defer rcancel()
		rdone := make(chan error, 1)
		go func() {
			_, err := Receive(rctx, plainConn{b}, ropts)
			rdone <- err
		}()
		if err := returns(t, "Send", done); !errors.Is(err, context.Canceled) {
			t.Fatalf("send: %v", err)
		}
		rcancel()
		returns(t, "Receive", rdone)
		settles(t, base)
	})
}
