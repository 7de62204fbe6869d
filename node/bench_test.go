package node_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/node"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/xferstore"
)

// BenchmarkServePath measures durable puts and point reads over HTTP at
// 16 clients against a node started by node.Run, beside the baseline:
// the same parts composed by hand as `kvtool serve` did before node/
// existed (store.Open, server.New, server.WithTransfers, server.Run). The
// two must be within noise of each other: node adds nothing per request.
//
//	go test ./node -run '^$' -bench ServePath -benchtime 5000x -count 3
func BenchmarkServePath(b *testing.B) {
	for _, path := range []struct {
		name  string
		start func(b *testing.B) string
	}{{"baseline", startByHand}, {"node", startNode}} {
		for _, op := range []string{"put", "get"} {
			b.Run(path.name+"/op="+op, func(b *testing.B) {
				c := client.New(path.start(b))
				defer c.Close()
				ctx := context.Background()
				if _, err := c.Put(ctx, "k0", []byte("v")); err != nil {
					b.Fatal(err)
				}
				var seq atomic.Int64
				b.SetParallelism(8) // 8 clients per GOMAXPROCS: 16 on two cores
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					val := make([]byte, 100)
					for pb.Next() {
						i := seq.Add(1)
						var err error
						if op == "put" {
							_, err = c.Put(ctx, fmt.Sprintf("k%d", i), val)
						} else {
							_, _, err = c.Get(ctx, "k0")
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// startNode runs a node until the benchmark ends and returns its API.
func startNode(b *testing.B) string {
	dir := b.TempDir() // before the Cleanup below, so removed after it
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- node.Run(ctx, node.Config{Dir: dir, Listen: "127.0.0.1:0",
			Events: node.Events{Listening: func(l node.Listening) error { addr <- l.APIAddr; return nil }}})
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	select {
	case a := <-addr:
		return a
	case err := <-done:
		b.Fatal(err)
		return ""
	}
}

// startByHand is what serve composed before node/: the baseline.
func startByHand(b *testing.B) string {
	st, err := store.Open(store.Options{Dir: b.TempDir(), Create: true})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := server.New(st, server.Options{})
	h := server.WithTransfers(srv, st, server.TransferOptions{Source: xferstore.NewStoreSource(st, xferstore.StoreSourceOptions{}), Context: ctx})
	var g errgroup.Group
	g.Go(func() error { return server.Run(ctx, ln, h, server.RunOptions{}) })
	b.Cleanup(func() {
		cancel()
		if err := g.Wait(); err != nil {
			b.Error(err)
		}
		st.Close()
	})
	return ln.Addr().String()
}
