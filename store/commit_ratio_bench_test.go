package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/benchbase"
	"github.com/kvtool/kvtool/segment"
)

// BenchmarkCommitRatio runs two-shard transfers through the store and the
// raw group-commit baseline (one goroutine writing every waiting 100-byte
// record with one WriteAt and one fdatasync, the store's WAL record size
// for a transfer) alternately, b.N operations per round, five rounds, at
// 16 and 128 clients, so that a loaded machine slows both alike. It
// reports the medians and store/group (issue 16: at least 0.75 at 128
// clients), and each side's process CPU time per operation (user+system,
// fsyncs included), which a loaded machine distorts less than the rates.
func BenchmarkCommitRatio(b *testing.B) {
	for _, clients := range []int{16, 128} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			s := openBench(b)
			// Each side's fsyncs: their mean time and the records each
			// carried say whether the store loses to the baseline on the
			// disk (slower fsyncs) or before it (fewer records per fsync).
			var storeSyncs benchbase.SyncCounter
			observe := func(st segment.SyncStats) { storeSyncs.Add(st.Records, st.Sync) }
			walPhaseObserver.Store(&observe)
			defer walPhaseObserver.Store(nil)
			var storeRates, groupRates []float64
			var groupSyncs benchbase.SyncCounter
			var storeCPU, groupCPU time.Duration
			for r := 0; r < 5; r++ {
				c0 := processCPU()
				storeRates = append(storeRates, opRate(b.N, clients, func(rng *rand.Rand) {
					if _, err := s.Commit(context.Background(), randomTransfer(rng)); err != nil {
						b.Error(err)
					}
				}))
				storeCPU += processCPU() - c0
				g := benchbase.StartGroupCommit(b, filepath.Join(benchDir(b), "baseline"), format.AppendFrame(nil, format.FrameWALTxn, make([]byte, 100)), &groupSyncs)
				c0 = processCPU()
				groupRates = append(groupRates, opRate(b.N, clients, func(*rand.Rand) { g.Append() }))
				groupCPU += processCPU() - c0
				g.Stop()
			}
			st, gr := median(storeRates), median(groupRates)
			b.ReportMetric(st, "store-commits/s")
			b.ReportMetric(gr, "group-appends/s")
			b.ReportMetric(st/gr, "store/group")
			b.ReportMetric(float64(storeCPU.Nanoseconds())/float64(5*b.N)/1e3, "store-cpu-µs/op")
			b.ReportMetric(float64(groupCPU.Nanoseconds())/float64(5*b.N)/1e3, "group-cpu-µs/op")
			storeSyncs.Report(b, "store")
			groupSyncs.Report(b, "group")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// opRate runs n operations over clients goroutines and returns them per
// second.
func opRate(n, clients int, op func(rng *rand.Rand)) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 11))
			for next.Add(1) <= int64(n) {
				op(rng)
			}
		}(c)
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// processCPU returns the user and system CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
