package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/segment"
)

// BenchmarkCheckpointInterference measures commits (two-shard transfers
// at 128 clients, b.N per phase) and point-read latency without and with
// checkpoints of a large state written back to back at the default
// maintenance rate (32 MiB/s). The phases alternate on one store, three
// rounds (KVTOOL_BENCH_ROUNDS), so that a loaded machine slows both alike;
// the metrics are medians, and on/off is the fraction of commits kept
// while checkpointing (issue 16: at least 0.9). A checkpointing phase goes
// on past b.N commits until a checkpoint has completed in it: otherwise a
// short phase measures only the start of one abandoned checkpoint and
// ckpt-MB/s reads 0.
func BenchmarkCheckpointInterference(b *testing.B) {
	keys := openBenchKeys() / 4
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("KVTOOL_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	share, _ := strconv.ParseFloat(os.Getenv("KVTOOL_BENCH_MAINT_SHARE"), 64) // 0: the default
	s := openBenchWith(b, Options{MaintenanceRate: 32 << 20, MaintenanceShare: share})
	fill(b, s, keys)
	var off, on, offP99, onP99, offSync, onSync []float64
	var ckpts, ckptBytes atomic.Int64
	var onTime time.Duration
	var syncs, syncNanos atomic.Int64
	observe := func(st segment.SyncStats) { syncs.Add(1); syncNanos.Add(int64(st.Sync)) }
	walPhaseObserver.Store(&observe)
	defer walPhaseObserver.Store(nil)
	for r := 0; r < rounds; r++ {
		for _, ckpt := range []bool{false, true} {
			ctx, cancel := context.WithCancel(context.Background())
			stop := make(chan struct{})
			var done sync.WaitGroup
			var until func() bool // nil: b.N commits are the whole phase
			if ckpt {
				done.Add(1)
				first := ckpts.Load()
				var quit atomic.Bool // the checkpoint loop stopped (on an error)
				until = func() bool { return ckpts.Load() > first || quit.Load() }
				go pprof.Do(ctx, pprof.Labels("work", "checkpoint"), func(ctx context.Context) {
					defer done.Done()
					defer quit.Store(true)
					for ctx.Err() == nil {
						s.Put(ctx, "ckpt-marker", []byte(time.Now().String()))
						info, err := s.Checkpoint(ctx)
						if err != nil {
							if ctx.Err() == nil {
								b.Error(err)
							}
							return
						}
						ckpts.Add(1)
						ckptBytes.Add(info.Size)
					}
				})
			}
			reads := readLatencies(s, stop, &done)
			syncs.Store(0)
			syncNanos.Store(0)
			t0 := time.Now()
			rate := commitPhase(b, s, 128, b.N, until)
			if ckpt {
				onTime += time.Since(t0)
			}
			syncUs := float64(syncNanos.Load()) / float64(max(1, syncs.Load())) / 1e3
			close(stop)
			cancel()
			done.Wait()
			d := *reads
			slices.Sort(d)
			p99 := 0.0
			if len(d) > 0 {
				p99 = float64(d[len(d)*99/100].Nanoseconds())
			}
			if ckpt {
				on, onP99, onSync = append(on, rate), append(onP99, p99), append(onSync, syncUs)
			} else {
				off, offP99, offSync = append(off, rate), append(offP99, p99), append(offSync, syncUs)
			}
		}
	}
	b.ReportMetric(median(off), "commits/s-off")
	b.ReportMetric(median(on), "commits/s-on")
	b.ReportMetric(median(on)/median(off), "on/off")
	b.ReportMetric(median(offP99), "read-p99-ns-off")
	b.ReportMetric(median(onP99), "read-p99-ns-on")
	b.ReportMetric(median(offSync), "wal-fsync-µs-off")
	b.ReportMetric(median(onSync), "wal-fsync-µs-on")
	b.ReportMetric(float64(ckpts.Load()), "checkpoints")
	// How fast checkpoints were written while the commits ran (completed
	// files only): the pacing must not buy the commits by never finishing.
	b.ReportMetric(float64(ckptBytes.Load())/1e6/onTime.Seconds(), "ckpt-MB/s")
	b.ReportMetric(0, "ns/op")
}

// commitPhase runs n transfers over clients goroutines, and more until
// until reports true if it is not nil, and returns the commits per second.
func commitPhase(b *testing.B, s *Store, clients, n int, until func() bool) float64 {
	var next, committed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for next.Add(1) <= int64(n) || (until != nil && !until()) {
				if _, err := s.Commit(context.Background(), randomTransfer(rng)); err != nil {
					b.Error(err)
					return
				}
				committed.Add(1)
			}
		}(c)
	}
	wg.Wait()
	return float64(committed.Load()) / time.Since(start).Seconds()
}

// fill adds n keys of 16 bytes with 100-byte values in large transactions.
func fill(b *testing.B, s *Store, n int) {
	rng := rand.New(rand.NewPCG(2, 2))
	for i := 0; i < n; i += 10000 {
		txn := &Txn{}
		for j := i; j < min(i+10000, n); j++ {
			v := make([]byte, 100)
			for k := range v {
				v[k] = byte('a' + rng.IntN(26))
			}
			txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: fmt.Sprintf("fill:%011d", j), Value: v})
		}
		if _, err := s.Commit(context.Background(), txn); err != nil {
			b.Fatal(err)
		}
	}
}

// readLatencies runs one reader until stop and returns its latencies. It
// reads in bursts with short pauses, as a client would, instead of
// spinning on a core the writers need.
func readLatencies(s *Store, stop chan struct{}, done *sync.WaitGroup) *[]time.Duration {
	var d []time.Duration
	done.Add(1)
	go func() {
		defer done.Done()
		rng := rand.New(rand.NewPCG(9, 9))
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := 0; i < 100; i++ {
				t0 := time.Now()
				s.Get(benchKeys[rng.IntN(benchAccounts)])
				d = append(d, time.Since(t0))
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	return &d
}
