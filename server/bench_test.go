package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

// The "over HTTP" figures of the Speed section. Names, workloads and units
// match store's BenchmarkCommit and BenchmarkRead, so the two runs read side
// by side: the difference is the cost of HTTP, JSON and loopback TCP.
//
//	go test ./server -run '^$' -bench HTTP -benchtime 20000x
//
// KVTOOL_BENCH_DIR puts the data directory on the disk to measure.

const benchAccounts = 10000

// benchDir is KVTOOL_BENCH_DIR (a fresh directory under it), else a temp dir.
func benchDir(b *testing.B) string {
	if d := os.Getenv("KVTOOL_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "bench-http-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// openBenchServer serves a store on disk with benchAccounts accounts of
// 1000000 over loopback TCP, with server.Run as kvtool serve does.
func openBenchServer(b *testing.B) *client.Client {
	st, err := store.Open(store.Options{Dir: benchDir(b), Create: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	srv := serveRun(b, server.New(st, server.Options{}))
	c := client.New(strings.TrimPrefix(srv.URL, "http://"))
	b.Cleanup(c.Close)
	ops := make([]api.Op, benchAccounts)
	for i := range ops {
		ops[i] = api.PutOp(benchAcct(i), "1000000")
	}
	if _, err := c.Txn(context.Background(), ops...); err != nil {
		b.Fatal(err)
	}
	return c
}

func benchAcct(i int) string { return fmt.Sprintf("acct:%05d", i) }

// randomTransfer moves 1 between two random accounts (on two shards, almost
// always) with the non-negative check.
func randomTransfer(rng *rand.Rand) []api.Op {
	a, c := rng.IntN(benchAccounts), rng.IntN(benchAccounts-1)
	if c >= a {
		c++
	}
	return []api.Op{api.AddOp(benchAcct(a), -1), api.AddOp(benchAcct(c), 1), api.CheckMinOp(benchAcct(a), 0)}
}

// BenchmarkHTTP measures durable single-key puts of 100-byte values and
// two-account transfers at 1, 16 and 128 concurrent clients, and point reads
// with and without 128 writers saturating the store, all through the HTTP
// API and the Go client.
func BenchmarkHTTP(b *testing.B) {
	val := make([]byte, 100)
	for _, clients := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("put/clients=%d", clients), func(b *testing.B) {
			c := openBenchServer(b)
			runClients(b, clients, "commits", func(ctx context.Context, rng *rand.Rand) error {
				_, err := c.Put(ctx, "k:"+strconv.Itoa(rng.IntN(1<<20)), val)
				return err
			})
		})
		b.Run(fmt.Sprintf("transfer/clients=%d", clients), func(b *testing.B) {
			c := openBenchServer(b)
			runClients(b, clients, "commits", func(ctx context.Context, rng *rand.Rand) error {
				_, err := c.Txn(ctx, randomTransfer(rng)...)
				return err
			})
		})
	}
	for _, writers := range []int{0, 128} {
		b.Run(fmt.Sprintf("get/writers=%d", writers), func(b *testing.B) {
			c := openBenchServer(b)
			stop := startWriters(c, writers)
			defer stop()
			runClients(b, 2, "reads", func(ctx context.Context, rng *rand.Rand) error {
				_, _, err := c.Get(ctx, benchAcct(rng.IntN(benchAccounts)))
				return err
			})
		})
	}
}

// startWriters runs n goroutines of transfers until the returned func is
// called, after letting them reach a steady state.
func startWriters(c *client.Client, n int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for ctx.Err() == nil {
				c.Txn(ctx, randomTransfer(rng)...)
			}
		}()
	}
	if n > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	return func() { cancel(); wg.Wait() }
}

// runClients runs b.N operations split over n goroutines and reports
// throughput (unit/s) and p50/p99 latency in µs.
func runClients(b *testing.B, n int, unit string, op func(context.Context, *rand.Rand) error) {
	ctx := context.Background()
	var next atomic.Int64
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := op(ctx, rng); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatencies(b, all, elapsed, unit)
}

func reportLatencies(b *testing.B, d []time.Duration, elapsed time.Duration, unit string) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(len(d))/elapsed.Seconds(), unit+"/s")
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(0, "ns/op")
}
