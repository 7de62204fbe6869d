// Package xfertest is the test support that package transfer's tests and
// xferstore's tests share: loopback TCP connections, connections that are
// cut, runs of a sender and a receiver against each other, a replica
// opener, and polling for a condition.
//
// It is test support only; nothing outside _test.go files imports it. It
// never imports transfer (it takes the two ends as functions), so package
// transfer's own tests may use it.
package xfertest

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// Secret is the secret both ends use unless a test says otherwise
// (transfer.NewSecret of it).
const Secret = "a test secret, 32 bytes long...."

// TCPPair is a loopback TCP connection: a is the sender's end, b the
// receiver's. Both are closed when the test ends.
func TCPPair(t testing.TB) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// Once runs send and recv against each other over a TCPPair: send on a
// goroutine, recv on the caller's, and returns when both did. wrapS and
// wrapR, if set, wrap each end's connection (to damage or cut it); each
// end's connection is closed as soon as it returns, so the other ends too.
func Once(t testing.TB, wrapS, wrapR func(net.Conn) net.Conn, send, recv func(net.Conn)) {
	t.Helper()
	a, b := TCPPair(t)
	var sc, rc net.Conn = a, b
	if wrapS != nil {
		sc = wrapS(a)
	}
	if wrapR != nil {
		rc = wrapR(b)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		send(sc)
		a.Close()
	}()
	recv(rc)
	b.Close()
	wg.Wait()
}

// Background runs send and recv against each other over a TCPPair, each
// on a goroutine of its own, and returns a func that ends both (closing
// the connection) and waits for them.
func Background(t testing.TB, send, recv func(net.Conn)) (stop func()) {
	a, b := TCPPair(t)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		send(a)
	}()
	go func() {
		defer wg.Done()
		recv(b)
	}()
	return func() {
		a.Close()
		b.Close()
		wg.Wait()
	}
}

// CutAfter returns a wrapper whose connection closes once n bytes went
// through it in the direction it wraps (reads).
func CutAfter(n int64) func(net.Conn) net.Conn {
	return func(c net.Conn) net.Conn {
		cc := &cutConn{Conn: c}
		cc.left.Store(n)
		return cc
	}
}

type cutConn struct {
	net.Conn
	left atomic.Int64
}

func (c *cutConn) Read(p []byte) (int, error) {
	left := c.left.Load()
	if left <= 0 {
		c.Conn.Close()
		return 0, errors.New("test: connection cut")
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.Conn.Read(p)
	c.left.Add(-int64(n))
	return n, err
}

// Replicas opens a received directory as a read replica once, and hands
// out the same store afterwards (as serve --join does). FS defaults to
// vfs.Default.
type Replicas struct {
	FS  vfs.FS
	Dir string
	mu  sync.Mutex
	st  *store.Store
}

// Open opens the replica, or returns the one opened before.
func (o *Replicas) Open() (*store.Store, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.st == nil {
		fs := o.FS
		if fs == nil {
			fs = vfs.Default
		}
		st, err := store.Open(store.Options{FS: fs, Dir: o.Dir, Replica: true})
		if err != nil {
			return nil, err
		}
		o.st = st
	}
	return o.st, nil
}

// Store returns the replica, nil before Open opened it.
func (o *Replicas) Store() *store.Store {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.st
}

// WaitFor polls cond until it holds, failing the test after a generous
// deadline.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
