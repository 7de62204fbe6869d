package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/immutable"

	"github.com/kvtool/kvtool/segment"
)

// benchDir is where benchmarks put real data directories: KVTOOL_BENCH_DIR,
// else the test's temp dir. Point it at the disk you want to measure.
func benchDir(b *testing.B) string {
	if d := os.Getenv("KVTOOL_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

const benchAccounts = 10000

func openBench(b *testing.B) *Store { return openBenchWith(b, Options{}) }

// openBenchWith opens a store for a benchmark with opts (Dir and Create
// are filled in) and creates the bench accounts.
func openBenchWith(b *testing.B, opts Options) *Store {
	opts.Dir, opts.Create = benchDir(b), true
	s, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	reportGroupCommits(b, s)
	txn := &Txn{}
	for i := 0; i < benchAccounts; i++ {
		txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: fmt.Sprintf("acct:%05d", i), Value: []byte("1000000")})
	}
	if _, err := s.Commit(context.Background(), txn); err != nil {
		b.Fatal(err)
	}
	return s
}

// walPhaseObserver, if set, also sees every WAL sync of a benchmark store
// (a benchmark that reports its phases apart).
var walPhaseObserver atomic.Pointer[func(segment.SyncStats)]

// reportGroupCommits reports, at the end of the benchmark, how many records
// each WAL fsync carried and how long the fsyncs took: the two numbers
// that bound durable throughput.
func reportGroupCommits(b *testing.B, s *Store) {
	var syncs, records, syncNanos atomic.Int64
	s.ObserveWAL(func(st segment.SyncStats) {
		syncs.Add(1)
		records.Add(int64(st.Records))
		syncNanos.Add(int64(st.Sync))
		if f := walPhaseObserver.Load(); f != nil {
			(*f)(st)
		}
	})
	b.Cleanup(func() {
		if n := syncs.Load(); n > 0 {
			b.ReportMetric(float64(records.Load())/float64(n), "records/fsync")
			b.ReportMetric(float64(syncNanos.Load())/float64(n)/1e3, "fsync-µs")
		}
	})
}

// latencies collects per-operation latencies from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d []time.Duration) { l.mu.Lock(); l.d = append(l.d, d...); l.mu.Unlock() }

func (l *latencies) report(b *testing.B, ops int, elapsed time.Duration, unit string) {
	slices.Sort(l.d)
	if len(l.d) == 0 {
		return
	}
	b.ReportMetric(float64(ops)/elapsed.Seconds(), unit+"/s")
	p50, p99 := l.d[len(l.d)/2], l.d[len(l.d)*99/100]
	if unit == "reads" { // sub-microsecond: report nanoseconds
		b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
	} else {
		b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
		b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	}
	b.ReportMetric(0, "ns/op")
}

// runClients runs b.N operations split over n goroutines and reports
// throughput and latency.
func runClients(b *testing.B, n int, unit string, op func(rng *rand.Rand) error) {
	var lat latencies
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := 0; c < n; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := op(rng); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			lat.add(mine)
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	lat.report(b, b.N, elapsed, unit)
}

// benchKeys are the account keys, formatted once so the benchmark measures
// the store, not fmt.
var benchKeys = func() []string {
	keys := make([]string, benchAccounts)
	for i := range keys {
		keys[i] = fmt.Sprintf("acct:%05d", i)
	}
	return keys
}()

func randomTransfer(rng *rand.Rand) *Txn {
	a, c := rng.IntN(benchAccounts), rng.IntN(benchAccounts-1)
	if c >= a {
		c++
	}
	ka, kc := benchKeys[a], benchKeys[c]
	return &Txn{Ops: []Op{
		{Kind: OpAdd, Key: ka, Delta: -1},
		{Kind: OpAdd, Key: kc, Delta: 1},
		{Kind: OpCheck, Key: ka, Check: CheckMin, Min: 0},
	}}
}

// BenchmarkCommit measures durable commits in process: single-key puts of
// 100-byte values and two-account transfers (two shards, almost always), at
// 1, 16 and 128 concurrent clients.
func BenchmarkCommit(b *testing.B) {
	val := make([]byte, 100)
	for _, clients := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("put/clients=%d", clients), func(b *testing.B) {
			s := openBench(b)
			runClients(b, clients, "commits", func(rng *rand.Rand) error {
				_, err := s.Put(context.Background(), "k:"+strconv.Itoa(rng.IntN(1<<20)), val)
				return err
			})
		})
		b.Run(fmt.Sprintf("transfer/clients=%d", clients), func(b *testing.B) {
			s := openBench(b)
			runClients(b, clients, "commits", func(rng *rand.Rand) error {
				_, err := s.Commit(context.Background(), randomTransfer(rng))
				return err
			})
		})
	}
}

// BenchmarkRead measures point reads from published snapshots, idle and
// while 128 writers saturate the store with transfers. Readers never wait
// on writers, so p99 should barely move.
func BenchmarkRead(b *testing.B) {
	for _, writers := range []int{0, 128} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := openBench(b)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 3))
					for {
						select {
						case <-stop:
							return
						default:
						}
						s.Commit(context.Background(), randomTransfer(rng))
					}
				}(w)
			}
			if writers > 0 {
				time.Sleep(100 * time.Millisecond) // let the writers reach steady state
			}
			runClients(b, 2, "reads", func(rng *rand.Rand) error {
				if _, ok := s.Get(fmt.Sprintf("acct:%05d", rng.IntN(benchAccounts))); !ok {
					return fmt.Errorf("account missing")
				}
				return nil
			})
			close(stop)
			wg.Wait()
		})
	}
}

// BenchmarkCoW compares the two copy-on-write ordered maps the store could
// use, on its hot operation: take a private version of a shard and change
// one key.
func BenchmarkCoW(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("key:%08d", i)
		}
		val := []byte("1000000")
		b.Run(fmt.Sprintf("tidwall/keys=%d", n), func(b *testing.B) {
			t := newTree()
			for _, k := range keys {
				t.Set(newItem(k, val))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := t.Copy()
				c.Set(newItem(keys[i%n], val))
				t = c
			}
		})
		b.Run(fmt.Sprintf("immutable/keys=%d", n), func(b *testing.B) {
			m := immutable.NewSortedMap[string, []byte](nil)
			for _, k := range keys {
				m = m.Set(k, val)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m = m.Set(keys[i%n], val)
			}
		})
	}
}
