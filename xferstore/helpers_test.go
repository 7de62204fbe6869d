package xferstore

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/xfertest"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
)

// The transfer runs of these tests, over xfertest's helpers (which
// package transfer's tests share).

// testSecret is the secret both ends use.
var testSecret = func() transfer.Secret {
	sec, err := transfer.NewSecret([]byte(xfertest.Secret))
	if err != nil {
		panic(err)
	}
	return sec
}()

var (
	tcpPair  = xfertest.TCPPair
	cutAfter = xfertest.CutAfter
	waitFor  = xfertest.WaitFor
)

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

// transferOnce runs Send and Receive against each other over loopback TCP
// (xfertest.Once).
func transferOnce(t testing.TB, src transfer.Source, sopts transfer.SendOptions, ropts transfer.ReceiveOptions, wrapS, wrapR func(net.Conn) net.Conn) outcome {
	t.Helper()
	sopts.Secret, ropts.Secret = testSecret, testSecret
	var o outcome
	xfertest.Once(t, wrapS, wrapR,
		func(c net.Conn) { o.send, o.sendErr = transfer.Send(context.Background(), c, src, sopts) },
		func(c net.Conn) { o.recv, o.recvErr = transfer.Receive(context.Background(), c, ropts) })
	return o
}

// replicaOpener is xfertest.Replicas with the Open a ReceiveOptions takes.
type replicaOpener struct{ xfertest.Replicas }

func (o *replicaOpener) open() (transfer.Replica, error) { return o.Open() }
func (o *replicaOpener) store() *store.Store             { return o.Store() }

// follow runs a following session in the background and returns a func
// that ends it (closing the connection) and returns both results.
func follow(t testing.TB, src transfer.Source, dir string, op *replicaOpener) func() outcome {
	sopts, ropts := smallOpts(dir)
	sopts.Secret, ropts.Secret = testSecret, testSecret
	ropts.Follow, ropts.Open, ropts.CreditEvery = true, op.open, fastCredit
	var o outcome
	stop := xfertest.Background(t,
		func(c net.Conn) { o.send, o.sendErr = transfer.Send(context.Background(), c, src, sopts) },
		func(c net.Conn) { o.recv, o.recvErr = transfer.Receive(context.Background(), c, ropts) })
	return func() outcome {
		stop()
		return o
	}
}
