package transfer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/kvtool/kvtool/internal/xfertest"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// replicaOpener is xfertest.Replicas with the Open a ReceiveOptions takes.
type replicaOpener struct{ xfertest.Replicas }

func (o *replicaOpener) open() (Replica, error) { return o.Open() }
func (o *replicaOpener) store() *store.Store    { return o.Store() }

// follow runs a following session in the background and returns a func
// that ends it (closing the connection) and returns both results.
func follow(t testing.TB, src Source, dir string, op *replicaOpener) func() outcome {
	sopts, ropts := smallOpts(dir)
	sopts.Secret, ropts.Secret = testSecret, testSecret
	ropts.Follow, ropts.Open = true, op.open
	var o outcome
	stop := xfertest.Background(t,
		func(c net.Conn) { o.send, o.sendErr = Send(context.Background(), c, src, sopts) },
		func(c net.Conn) { o.recv, o.recvErr = Receive(context.Background(), c, ropts) })
	return func() outcome {
		stop()
		return o
	}
}

// fastCredits makes receivers report progress at every entry, so tests
// exercise those frames.
func fastCredits(t *testing.T) {
	old := creditEvery
	creditEvery = 0
	t.Cleanup(func() { creditEvery = old })
}

func TestFollowAndReconnect(t *testing.T) {
	fastCredits(t)
	src := newMemSource(t, 2000, 3)
	dir := t.TempDir()
	op := &replicaOpener{xfertest.Replicas{Dir: dir}}
	defer func() {
		if st := op.store(); st != nil {
			st.Close()
		}
	}()
	stop := follow(t, src, dir, op)
	for i := 0; i < 200; i++ {
		src.append(fmt.Sprintf("f:%d", i%17), []byte(fmt.Sprint(i)))
	}
	waitCaughtUp(t, op, src)
	o := stop()
	if !errors.Is(o.recvErr, ErrPeerGone) || !o.recv.CutOver {
		t.Fatalf("receive: %+v %v", o.recv, o.recvErr)
	}

	// Reconnect: the directory holds a store now, so only the log after
	// it is sent.
	for i := 0; i < 100; i++ {
		src.append(fmt.Sprintf("g:%d", i%5), []byte(fmt.Sprint(i)))
	}
	stop = follow(t, src, dir, op)
	waitCaughtUp(t, op, src)
	o = stop()
	if !o.recv.TailOnly || !o.send.TailOnly || o.send.ChunkBytes != 0 {
		t.Fatalf("reconnect sent a snapshot: %+v %+v", o.recv, o.send)
	}
}

func waitCaughtUp(t *testing.T, op *replicaOpener, src *memSource) {
	t.Helper()
	waitFor(t, "the replica to catch up", func() bool {
		st := op.store()
		return st != nil && st.Snapshot().Index() == src.LastIndex()
	})
	snap := op.store().Snapshot()
	if got, want := snap.Hash(), src.hashAt(snap.Index()); got != want {
		t.Fatalf("replica at %d: state hash %016x, the source had %016x", snap.Index(), got, want)
	}
}

// TestCatchUpStore receives into a directory that holds an older copy of
// the store: only the log after it comes, and the session ends there.
func TestCatchUpStore(t *testing.T) {
	src := newMemSource(t, 500, 3)
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	if o := transferOnce(t, src, sopts, ropts, nil, nil); o.recvErr != nil {
		t.Fatal(o.recvErr)
	}
	for i := 0; i < 50; i++ {
		src.append(fmt.Sprintf("c:%d", i), []byte("v"))
	}
	op := &replicaOpener{xfertest.Replicas{Dir: dir}}
	ropts.Open = op.open
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if o.recvErr != nil || !o.recv.TailOnly || o.recv.Applied != src.LastIndex() || o.send.Applied != src.LastIndex() {
		t.Fatalf("%+v %v\n%+v %v", o.recv, o.recvErr, o.send, o.sendErr)
	}
	op.store().Close()
	checkInstalled(t, vfs.Default, dir, src)
}

// TestCatchUpTooFarBehind: a store whose next entry the source no longer
// has cannot be caught up.
func TestCatchUpTooFarBehind(t *testing.T) {
	src := newMemSource(t, 100, 3)
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	if o := transferOnce(t, src, sopts, ropts, nil, nil); o.recvErr != nil {
		t.Fatal(o.recvErr)
	}
	src.base += 1000 // the log was compacted far past the copy
	op := &replicaOpener{xfertest.Replicas{Dir: dir}}
	defer func() { op.store().Close() }()
	ropts.Open = op.open
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if !errors.Is(o.recvErr, ErrTooFarBehind) || !errors.Is(o.sendErr, ErrTooFarBehind) {
		t.Fatalf("receive: %v\nsend: %v", o.recvErr, o.sendErr)
	}
}
