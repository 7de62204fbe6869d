package server_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

// BenchmarkWritersDuringQuery measures commits (4 writers, one put each)
// alone and while full-table queries run back to back on the server, in
// alternating rounds so that both see the same machine: alone-ns and
// during-ns are the time per commit, during/alone what a long query costs
// writers (the issue asks for at most 1.10), queries how many full scans
// finished meanwhile, and the process's cores and collections in each
// phase. Each phase must outlast a few scans (about 0.1 s
// each here): with fewer commits than below, queries may not even finish.
//
//	go test -run '^$' -bench WritersDuringQuery -benchtime 50000x ./server/
func BenchmarkWritersDuringQuery(b *testing.B) {
	ts := newTestServer(b, server.Options{})
	for i := 0; i < 100_000; i += 1000 {
		txn := &store.Txn{}
		for j := i; j < i+1000; j++ {
			txn.Ops = append(txn.Ops, store.Op{Kind: store.OpPut, Key: fmt.Sprintf("k%07d", j), Value: []byte("0123456789")})
		}
		if _, err := ts.st.Commit(context.Background(), txn); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	write := func(n int64) time.Duration {
		start := time.Now()
		last := next.Load() + n
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1); i <= last; i = next.Add(1) {
					if _, err := ts.st.Put(context.Background(), fmt.Sprintf("w%09d", i), []byte("v")); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		next.Store(last)
		return time.Since(start)
	}
	scans := func(ctx context.Context, done chan<- int) {
		n := 0
		for ctx.Err() == nil {
			_, err := ts.c.Query(ctx, client.QueryRequest{SQL: "SELECT count(*), sum(length(value)) FROM kv WHERE value <> ''"},
				func(client.QueryHeader) error { return nil }, func([]any) error { return nil })
			if err == nil {
				n++
			}
		}
		done <- n
	}
	const rounds = 10
	per := max(1, int64(b.N)/rounds)
	var alone, during phaseCost
	queries := 0
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		alone.add(func() time.Duration { return write(per) })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int)
		go scans(ctx, done)
		during.add(func() time.Duration { return write(per) })
		cancel()
		queries += <-done
	}
	b.StopTimer()
	commits := float64(per * rounds)
	b.ReportMetric(float64(alone.wall.Nanoseconds())/commits, "alone-ns")
	b.ReportMetric(float64(during.wall.Nanoseconds())/commits, "during-ns")
	b.ReportMetric(float64(during.wall)/float64(alone.wall), "during/alone")
	b.ReportMetric(float64(queries), "queries")
	// What the process used of the machine in each phase: the cores
	// (CPU time over wall time) and the collections, to tell a query that
	// takes CPU or makes garbage from writers that merely wait longer.
	b.ReportMetric(float64(alone.cpu)/float64(alone.wall), "alone-cores")
	b.ReportMetric(float64(during.cpu)/float64(during.wall), "during-cores")
	b.ReportMetric(float64(alone.gcs), "alone-gcs")
	b.ReportMetric(float64(during.gcs), "during-gcs")
}

// phaseCost sums the wall time, the process's CPU time and the garbage
// collections of a benchmark's phases.
type phaseCost struct {
	wall, cpu time.Duration
	gcs       uint32
}

// add runs one phase, which returns its own wall time.
func (c *phaseCost) add(phase func() time.Duration) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	cpu, gcs := processCPU(), ms.NumGC
	c.wall += phase()
	runtime.ReadMemStats(&ms)
	c.cpu += processCPU() - cpu
	c.gcs += ms.NumGC - gcs
}

// processCPU is the CPU time the process has used, all threads.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
