package transfer

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/segment"
)

// failingReplica is a store that failed: it applies nothing.
type failingReplica struct{ last uint64 }

func (f *failingReplica) LastIndex() uint64 { return f.last }
func (f *failingReplica) EnqueueEntry(context.Context, segment.Entry) (func() error, error) {
	return nil, errors.New("test: the store failed stop after an fsync failure")
}

// TestPermanentErrors: the errors a retry would meet again are told
// apart, on both sides, from those a new session may not.
func TestPermanentErrors(t *testing.T) {
	src := newMemSource(t, 300, 1)
	check := func(t *testing.T, what string, err error, want bool) {
		t.Helper()
		if err == nil || Permanent(err) != want {
			t.Errorf("%s: Permanent(%v) = %v, want %v", what, err, !want, want)
		}
	}
	t.Run("wrong secret", func(t *testing.T) {
		sopts, ropts := smallOpts(t.TempDir())
		sopts.Secret = mustSecret("another secret, also long enough")
		o := transferOnce(t, src, sopts, ropts, nil, nil)
		check(t, "receive", o.recvErr, true)
		check(t, "send", o.sendErr, true)
	})
	t.Run("not a transfer listener", func(t *testing.T) {
		web := httptest.NewServer(http.NotFoundHandler())
		defer web.Close()
		_, err := receiveFrom(t, web.Listener.Addr().String(), ReceiveOptions{})
		check(t, "receive from an HTTP server", err, true)
		if !strings.Contains(err.Error(), "does not speak the kvtool transfer protocol") {
			t.Errorf("receive from an HTTP server: %v", err)
		}
	})
	t.Run("another store", func(t *testing.T) {
		dir := partialDir(t, src)
		sopts, ropts := smallOpts(dir)
		o := transferOnce(t, newMemSource(t, 300, 1), sopts, ropts, nil, nil)
		check(t, "receive", o.recvErr, true)
	})
	t.Run("local store failed", func(t *testing.T) {
		dir := t.TempDir()
		sopts, ropts := smallOpts(dir)
		if o := transferOnce(t, src, sopts, ropts, nil, nil); o.recvErr != nil {
			t.Fatal(o.recvErr)
		}
		src.append("more", []byte("x"))
		ropts.Open = func() (Replica, error) { return &failingReplica{last: src.LastIndex() - 1}, nil }
		o := transferOnce(t, src, sopts, ropts, nil, nil)
		check(t, "receive", o.recvErr, true)
		if !errors.Is(o.recvErr, ErrLocalStore) {
			t.Errorf("receive: %v", o.recvErr)
		}
	})
	t.Run("transient", func(t *testing.T) {
		sopts, ropts := smallOpts(t.TempDir())
		o := transferOnce(t, src, sopts, ropts, nil, cutAfter(3000))
		check(t, "a cut connection", o.recvErr, false)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		defer ln.Close()
		_, err = receiveFrom(t, ln.Addr().String(), ReceiveOptions{})
		check(t, "a peer that hangs up", err, false)
		check(t, "busy", &PeerError{Peer: "p", Message: ErrBusy.Error()}, false)
		check(t, "cancelled", context.Canceled, false)
	})
}
