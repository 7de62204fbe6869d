package xferstore

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/vfs"
)

// The helpers below are the part of package transfer's test helpers that
// these tests need: a run of Send against Receive over loopback TCP, a
// connection that is cut, a replica that follows.

// testSecret is the secret both ends use.
var testSecret = func() transfer.Secret {
	sec, err := transfer.NewSecret([]byte("a test secret, 32 bytes long...."))
	if err != nil {
		panic(err)
	}
	return sec
}()

// fastCredit makes receivers report progress at every entry, so a
// source's lease follows a replica at once.
const fastCredit = time.Nanosecond

// smallOpts are options with small chunks and window, so a cut lands
// mid-snapshot.
func smallOpts(dir string) (transfer.SendOptions, transfer.ReceiveOptions) {
	return transfer.SendOptions{ChunkSize: format.MinXferChunk, Peer: "receiver", RetainEvery: 20 * time.Millisecond},
		transfer.ReceiveOptions{Dir: dir, Window: 4 * format.MinXferChunk, Peer: "sender"}
}

// outcome is the result of one transfer run by transferOnce.
type outcome struct {
	send    transfer.SendResult
	sendErr error
	recv    transfer.ReceiveResult
	recvErr error
}

// transferOnce runs Send and Receive against each other over loopback TCP.
// wrapS and wrapR, if set, wrap each end's connection (to cut it); a
// failing end closes its connection so the other ends too.
func transferOnce(t testing.TB, src transfer.Source, sopts transfer.SendOptions, ropts transfer.ReceiveOptions, wrapS, wrapR func(net.Conn) net.Conn) outcome {
	t.Helper()
	a, b := tcpPair(t)
	var sc, rc net.Conn = a, b
	if wrapS != nil {
		sc = wrapS(a)
	}
	if wrapR != nil {
		rc = wrapR(b)
	}
	sopts.Secret, ropts.Secret = testSecret, testSecret
	var o outcome
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.send, o.sendErr = transfer.Send(context.Background(), sc, src, sopts)
		a.Close()
	}()
	o.recv, o.recvErr = transfer.Receive(context.Background(), rc, ropts)
	b.Close()
	wg.Wait()
	return o
}

// tcpPair is a loopback TCP connection: a is the sender's end, b the
// receiver's.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
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
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// cutConn fails every read once n bytes were read.
type cutConn struct {
	net.Conn
	left atomic.Int64
}

func cutAfter(n int64) func(net.Conn) net.Conn {
	return func(c net.Conn) net.Conn {
		cc := &cutConn{Conn: c}
		cc.left.Store(n)
		return cc
	}
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

// replicaOpener opens the received directory as a read replica once, and
// hands out the same store afterwards (as serve --join does).
type replicaOpener struct {
	dir string
	mu  sync.Mutex
	st  *store.Store
}

func (o *replicaOpener) open() (transfer.Replica, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.st == nil {
		st, err := store.Open(store.Options{FS: vfs.Default, Dir: o.dir, Replica: true})
		if err != nil {
			return nil, err
		}
		o.st = st
	}
	return o.st, nil
}

func (o *replicaOpener) store() *store.Store {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.st
}

// follow runs a following session in the background and returns a func
// that ends it (closing the connection) and returns both results.
func follow(t testing.TB, src transfer.Source, dir string, op *replicaOpener) func() outcome {
	a, b := tcpPair(t)
	sopts, ropts := smallOpts(dir)
	sopts.Secret, ropts.Secret = testSecret, testSecret
	ropts.Follow, ropts.Open, ropts.CreditEvery = true, op.open, fastCredit
	var o outcome
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		o.send, o.sendErr = transfer.Send(context.Background(), a, src, sopts)
	}()
	go func() {
		defer wg.Done()
		o.recv, o.recvErr = transfer.Receive(context.Background(), b, ropts)
	}()
	return func() outcome {
		a.Close()
		b.Close()
		wg.Wait()
		return o
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
