package segment

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/benchbase"
	"github.com/kvtool/kvtool/vfs"
)

// The benchmarks write real files with fdatasync. They run in a temporary
// directory under $KVTOOL_BENCH_DIR, or os.TempDir() if unset: point it at
// the disk to measure (on a tmpfs an fsync is free and the numbers mean
// nothing).
//
// BenchmarkAppend compares the Log's durable Append, at 1, 16 and 128
// concurrent appenders, with two baselines on the same kind of file
// (preallocated with fallocate) and the same 100-byte records framed the
// same way: one writer doing WriteAt + fdatasync per record, and the
// simplest group commit (one goroutine batching every waiting record into
// one WriteAt + one fdatasync). Each reports appends/s and the p50 and p99
// latency of one append.
//
//	go test ./segment -run XXX -bench Append -benchtime 3s
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("log/appenders=%d", n), func(b *testing.B) { benchLog(b, n) })
	}
	b.Run("baseline-sync-per-record/appenders=1", benchSyncPerRecord)
	for _, n := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("baseline-group/appenders=%d", n), func(b *testing.B) { benchSimpleGroup(b, n) })
	}
}

// BenchmarkAppendRatio runs the Log, the Log without its adaptive gather
// (Options.NoGather) and the simplest group commit alternately, b.N
// appends per round, five rounds each at 16 and 128 appenders, so that a
// loaded machine slows them alike, and reports the median appends/s of
// each and log/group (issue 16: at least 1 at every concurrency). For each
// it also reports the records one fsync carried and the mean fsync time:
// whether the log loses to the baseline on the disk (slower fsyncs) or
// before it (fewer records per fsync).
func BenchmarkAppendRatio(b *testing.B) {
	for _, n := range []int{16, 128} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
			var logRates, noGatherRates, groupRates []float64
			var logSyncs, noGatherSyncs, groupSyncs benchbase.SyncCounter
			for r := 0; r < 5; r++ {
				logRates = append(logRates, appendRate(b, n, logAppender(false, &logSyncs)))
				noGatherRates = append(noGatherRates, appendRate(b, n, logAppender(true, &noGatherSyncs)))
				groupRates = append(groupRates, appendRate(b, n, groupAppender(&groupSyncs)))
			}
			lg, ng, gr := medianOf(logRates), medianOf(noGatherRates), medianOf(groupRates)
			b.ReportMetric(lg, "log-appends/s")
			b.ReportMetric(ng, "nogather-appends/s")
			b.ReportMetric(gr, "group-appends/s")
			b.ReportMetric(lg/gr, "log/group")
			b.ReportMetric(ng/gr, "nogather/group")
			logSyncs.Report(b, "log")
			noGatherSyncs.Report(b, "nogather")
			groupSyncs.Report(b, "group")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// appendRate runs b.N appends over n goroutines with the appender mk
// makes (and stops after), and returns appends per second.
func appendRate(b *testing.B, n int, mk func(b *testing.B) (appendOne, stop func())) float64 {
	appendOne, stop := mk(b)
	defer stop()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range n {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				appendOne()
			}
		})
	}
	wg.Wait()
	return float64(b.N) / time.Since(start).Seconds()
}

// logAppender returns what opens a Log for one round, with or without
// its gather, counting its fsyncs in syncs.
func logAppender(noGather bool, syncs *benchbase.SyncCounter) func(b *testing.B) (func(), func()) {
	return func(b *testing.B) (func(), func()) { return openLogAppender(b, noGather, syncs) }
}

func openLogAppender(b *testing.B, noGather bool, syncs *benchbase.SyncCounter) (func(), func()) {
	dir := benchDir(b)
	l, err := Open(Options{FS: vfs.Default, Dir: dir, NoGather: noGather,
		OnSync: func(st SyncStats) { syncs.Add(st.Records, st.Sync) }})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, benchPayload)
	return func() {
			if _, err := l.Append(format.FrameWALTxn, data); err != nil {
				b.Error(err)
			}
		}, func() {
			l.Close()
			os.RemoveAll(dir)
		}
}

// groupAppender returns what starts the simplest group commit
// (benchSimpleGroup's) for one round, counting its fsyncs in syncs.
func groupAppender(syncs *benchbase.SyncCounter) func(b *testing.B) (func(), func()) {
	return func(b *testing.B) (func(), func()) { return startGroupAppender(b, syncs) }
}

func startGroupAppender(b *testing.B, syncs *benchbase.SyncCounter) (func(), func()) {
	rec := appendRecord(nil, format.FrameWALTxn, 1, 1, make([]byte, benchPayload))
	g := benchbase.StartGroupCommit(b, benchDir(b)+"/group", rec, syncs)
	return g.Append, g.Stop
}

func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

const benchPayload = 100

func benchDir(b *testing.B) string {
	root := os.Getenv("KVTOOL_BENCH_DIR")
	if root == "" {
		root = os.TempDir()
	}
	dir, err := os.MkdirTemp(root, "kvtool-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func benchLog(b *testing.B, appenders int) {
	l, err := Open(Options{FS: vfs.Default, Dir: benchDir(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	data := make([]byte, benchPayload)
	runAppenders(b, appenders, func() {
		if _, err := l.Append(format.FrameWALTxn, data); err != nil {
			b.Error(err)
		}
	})
}

// baselineFile is a preallocated file the baselines write framed records to.
type baselineFile struct {
	f   vfs.File
	off int64
	rec []byte
}

func newBaselineFile(b *testing.B) *baselineFile {
	f, err := vfs.Default.Create(benchDir(b) + "/baseline")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	size := max(DefaultSegmentSize, int64(b.N+1)*(benchPayload+32))
	if err := f.Preallocate(size); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return &baselineFile{f: f, rec: appendRecord(nil, format.FrameWALTxn, 1, 1, make([]byte, benchPayload))}
}

// write writes p at the end and fdatasyncs, and returns how long the
// fdatasync took.
func (bf *baselineFile) write(b *testing.B, p []byte) time.Duration {
	if _, err := bf.f.WriteAt(p, bf.off); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if err := bf.f.Sync(); err != nil {
		b.Fatal(err)
	}
	bf.off += int64(len(p))
	return time.Since(t0)
}

// benchSyncPerRecord is baseline (a): one writer, WriteAt + fdatasync per
// record.
func benchSyncPerRecord(b *testing.B) {
	bf := newBaselineFile(b)
	runAppenders(b, 1, func() { bf.write(b, bf.rec) })
}

// benchSimpleGroup is baseline (b): appenders hand records to one committer
// goroutine, which takes every record waiting, writes them with one WriteAt
// and syncs once, then releases their appenders.
func benchSimpleGroup(b *testing.B, appenders int) {
	bf := newBaselineFile(b)
	type req struct {
		rec  []byte
		done chan struct{}
	}
	reqs := make(chan req, appenders)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		var buf []byte
		var batch []req
		for r := range reqs {
			batch = append(batch[:0], r)
		drain:
			for {
				select {
				case r, ok := <-reqs:
					if !ok {
						break drain
					}
					batch = append(batch, r)
				default:
					break drain
				}
			}
			buf = buf[:0]
			for _, r := range batch {
				buf = append(buf, r.rec...)
			}
			bf.write(b, buf)
			for _, r := range batch {
				r.done <- struct{}{}
			}
		}
	}()
	var pool sync.Pool // one done channel per appender goroutine, reused
	runAppenders(b, appenders, func() {
		done, _ := pool.Get().(chan struct{})
		if done == nil {
			done = make(chan struct{}, 1)
		}
		reqs <- req{bf.rec, done}
		<-done
		pool.Put(done)
	})
	close(reqs)
	<-stopped
}

// runAppenders runs b.N calls of appendOne spread over n goroutines and
// reports throughput and latency percentiles.
func runAppenders(b *testing.B, n int, appendOne func()) {
	lat := make([][]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range n {
		wg.Go(func() {
			mine := make([]time.Duration, 0, b.N/n+1)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				appendOne()
				mine = append(mine, time.Since(t0))
			}
			lat[w] = mine
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	b.ReportMetric(percentile(all, 0.50), "p50-µs")
	b.ReportMetric(percentile(all, 0.99), "p99-µs")
}

func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(q*float64(len(sorted)-1))].Microseconds())
}

// BenchmarkRotate measures a rotation of a log with the default 64 MiB
// segments: what the commit that crosses a segment boundary waits for. The
// background worker is given the time it has in real use (a segment's
// worth of commits) to prepare the next segment, outside the timer.
//
//	go test ./segment -run XXX -bench Rotate -benchtime 50x
func BenchmarkRotate(b *testing.B) {
	l, err := Open(Options{FS: vfs.Default, Dir: benchDir(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	data := make([]byte, benchPayload)
	var lat []time.Duration
	for b.Loop() {
		b.StopTimer()
		if _, err := l.Append(format.FrameWALTxn, data); err != nil {
			b.Fatal(err)
		}
		waitSpare(b, l)
		b.StartTimer()
		t0 := time.Now()
		if err := l.Rotate(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.5), "p50-µs")
	b.ReportMetric(percentile(lat, 0.99), "p99-µs")
}
