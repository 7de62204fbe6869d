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

// BenchmarkWritersDuringQuery measures what a full-table query costs
// writers. Each iteration is one full scan of 100k keys on the server
// (paced as every query is), with 4 writers committing (one put each) from
// before it starts until it has finished, and beside it as many commits
// with no query running (the last scan's number), before the scan in
// every other iteration and after it in the others, so that both phases
// see the same machine, however its load drifts: alone-ns and during-ns
// are the time per commit,
// during/alone what the query costs writers (the issue asks for at most
// 1.10), queries the full scans measured (b.N, every one of them
// finished), scan-ms how long each took, and the process's cores and
// collections in each phase. A phase is a whole scan, never a fixed
// number of commits that a slow scan might outlast.
//
//	go test -run '^$' -bench WritersDuringQuery -benchtime 20x ./server/
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
	w := &benchWriters{st: ts.st}
	scan := func() {
		rows := 0
		_, err := ts.c.Query(context.Background(), client.QueryRequest{SQL: "SELECT count(*), sum(length(value)) FROM kv WHERE value <> ''"},
			func(client.QueryHeader) error { return nil }, func([]any) error { rows++; return nil })
		if err != nil || rows != 1 {
			b.Fatalf("full scan: %d rows, %v", rows, err)
		}
	}
	scan() // the server's first query opens its session
	var alone, during phaseCost
	var n, aloneCommits, duringCommits int64
	writeAlone := func() {
		alone.add(func() time.Duration {
			start := time.Now()
			w.write(n)
			return time.Since(start)
		})
		aloneCommits += n
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 1 {
			writeAlone()
		}
		during.add(func() time.Duration {
			start := time.Now()
			stop := w.start()
			scan()
			n = stop()
			return time.Since(start)
		})
		duringCommits += n
		if i%2 == 0 {
			writeAlone()
		}
	}
	b.StopTimer()
	if w.err.Load() != nil {
		b.Fatal(*w.err.Load())
	}
	aloneNs := float64(alone.wall.Nanoseconds()) / float64(aloneCommits)
	duringNs := float64(during.wall.Nanoseconds()) / float64(duringCommits)
	b.ReportMetric(aloneNs, "alone-ns")
	b.ReportMetric(duringNs, "during-ns")
	b.ReportMetric(duringNs/aloneNs, "during/alone")
	b.ReportMetric(float64(b.N), "queries")
	b.ReportMetric(float64(during.wall.Milliseconds())/float64(b.N), "scan-ms")
	b.ReportMetric(float64(duringCommits)/float64(b.N), "commits/scan")
	// What the process used of the machine in each phase: the cores
	// (CPU time over wall time) and the collections, to tell a query that
	// takes CPU or makes garbage from writers that merely wait longer.
	b.ReportMetric(float64(alone.cpu)/float64(alone.wall), "alone-cores")
	b.ReportMetric(float64(during.cpu)/float64(during.wall), "during-cores")
	b.ReportMetric(float64(alone.gcs), "alone-gcs")
	b.ReportMetric(float64(during.gcs), "during-gcs")
}

// benchWriters are the benchmark's 4 writers, each committing one put at
// a time under keys of their own.
type benchWriters struct {
	st   *store.Store
	next atomic.Int64 // the last key number handed out
	err  atomic.Pointer[error]
}

// writers is how many goroutines commit at once.
const writers = 4

// start starts the writers; they commit until the function it returns is
// called, which waits for them and returns how many commits they made.
func (w *benchWriters) start() (stop func() int64) {
	var done atomic.Bool
	var n atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() && w.put() {
				n.Add(1)
			}
		}()
	}
	return func() int64 {
		done.Store(true)
		wg.Wait()
		return n.Load()
	}
}

// write makes n commits and returns when they are done.
func (w *benchWriters) write(n int64) {
	var left atomic.Int64
	left.Store(n)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 && w.put() {
			}
		}()
	}
	wg.Wait()
}

// put commits one put under a new key; false after an error (kept in err).
func (w *benchWriters) put() bool {
	if _, err := w.st.Put(context.Background(), fmt.Sprintf("w%09d", w.next.Add(1)), []byte("v")); err != nil {
		w.err.CompareAndSwap(nil, &err)
		return false
	}
	return true
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
