package xferstore

import (
	"context"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvtool/kvtool/internal/xfertest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/vfs"
)

// The receiving end of a transfer in a process of its own
// (xfertest.RunPeer), filling the directory receiverDirEnv names ("mem:"
// for an in-memory one, as if on another machine's disk). The child
// lowers its own priority (nice 19), so that on a shared machine the
// scheduler gives the source's writers the cores first: the receiver's
// CPU is not charged to the source, as when the receiver is another
// machine.
const receiverDirEnv = "KVTOOL_XFER_RECEIVER_DIR"

// TestReceiverProcess is the child's entry point; run on its own it skips.
func TestReceiverProcess(t *testing.T) {
	c := xfertest.PeerConn(t)
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, 19); err != nil {
		t.Logf("nice: %v", err)
	}
	ropts := transfer.ReceiveOptions{Dir: os.Getenv(receiverDirEnv), Secret: testSecret}
	if ropts.Dir == "mem:" {
		ropts.Dir, ropts.FS = "/r", vfs.NewMem()
	}
	if _, err := transfer.Receive(context.Background(), c, ropts); err != nil {
		t.Fatal(err)
	}
}

// transferToProcess sends src to a receiver started as a child process
// (see TestReceiverProcess) into dir, waits until both ends are done, and
// returns the bytes sent.
func transferToProcess(b *testing.B, src transfer.Source, sopts transfer.SendOptions, dir string) int64 {
	sopts.Secret = testSecret
	var res transfer.SendResult
	xfertest.RunPeer(b, "TestReceiverProcess", []string{receiverDirEnv + "=" + dir}, func(c net.Conn) error {
		var err error
		res, err = transfer.Send(context.Background(), c, src, sopts)
		return err
	})
	return res.WireBytes
}

// BenchmarkCommitDuringProcessTransfer measures a source store's commit
// throughput (bank transfers from 4 writers) alone and while it sends a
// snapshot to a receiver in another process at the default
// --transfer-max-rate (32 MiB/s) and unlimited, alternating, b.N rounds.
// "%-kept" is the commits during the paced transfer as a percentage of
// those alone (issue 16: at least 90). The receiver fills an in-memory
// directory unless KVTOOL_BENCH_RECEIVER_DISK is set (then a directory on
// the source's disk, whose fsyncs compete with the source's).
func BenchmarkCommitDuringProcessTransfer(b *testing.B) {
	st := newSourceStore(b, b.TempDir(), benchKeys())
	defer st.Close()
	if _, err := st.Checkpoint(context.Background()); err != nil { // as serve's compaction leaves it
		b.Fatal(err)
	}
	src := NewStoreSource(st, StoreSourceOptions{})
	dir := func() string {
		if os.Getenv("KVTOOL_BENCH_RECEIVER_DISK") != "" {
			return b.TempDir()
		}
		return "mem:"
	}
	var alone, paced, unlimited []float64
	// The WAL's group commits in each phase: the mean fsync time and
	// records per fsync say whether a transfer slows the disk or the
	// committers (CPU, wakeups).
	var syncs, recs, syncNanos atomic.Int64
	st.ObserveWAL(func(s segment.SyncStats) { syncs.Add(1); recs.Add(int64(s.Records)); syncNanos.Add(int64(s.Sync)) })
	var syncUs, perSync [2][]float64 // alone, paced
	phase := func(k int, f func()) func() {
		return func() {
			syncs.Store(0)
			recs.Store(0)
			syncNanos.Store(0)
			f()
			n := float64(max(1, syncs.Load()))
			syncUs[k] = append(syncUs[k], float64(syncNanos.Load())/n/1e3)
			perSync[k] = append(perSync[k], float64(recs.Load())/n)
		}
	}
	// The source's CPU per MB sent, from a transfer with no commits
	// meanwhile (while the store commits, the transfer's share of the
	// process's CPU cannot be told from the commits' on a loaded machine),
	// first: after the rounds, the WAL after the base may have outgrown
	// ReuseBase, and the source would write a checkpoint for it.
	cpu := xfertest.CPU()
	sent := transferToProcess(b, src, transfer.SendOptions{}, dir())
	b.ReportMetric(float64(xfertest.CPU()-cpu)/1e6/(float64(sent)/1e6), "source-cpu-ms/MB-idle")
	for i := 0; i < b.N; i++ {
		var d time.Duration
		paced = append(paced, commitRate(b, st, phase(1, func() {
			start := time.Now()
			transferToProcess(b, src, transfer.SendOptions{MaxRate: 32 << 20}, dir())
			d = time.Since(start)
		})))
		alone = append(alone, commitRate(b, st, phase(0, func() { time.Sleep(d) }))) // as long as the paced transfer
		unlimited = append(unlimited, commitRate(b, st, func() { transferToProcess(b, src, transfer.SendOptions{}, dir()) }))
	}

	b.ReportMetric(medianOf(syncUs[0]), "fsync-µs-alone")
	b.ReportMetric(medianOf(syncUs[1]), "fsync-µs-during")
	b.ReportMetric(medianOf(perSync[0]), "recs/fsync-alone")
	b.ReportMetric(medianOf(perSync[1]), "recs/fsync-during")
	b.ReportMetric(medianOf(alone), "txn/s-alone")
	b.ReportMetric(medianOf(paced), "txn/s-during-32MiB/s")
	b.ReportMetric(medianOf(unlimited), "txn/s-during-unlimited")
	b.ReportMetric(medianOf(paced)/medianOf(alone)*100, "%-kept")
	b.ReportMetric(medianOf(unlimited)/medianOf(alone)*100, "%-kept-unlimited")
	b.ReportMetric(0, "ns/op")
}

func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
