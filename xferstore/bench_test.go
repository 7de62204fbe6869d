package xferstore

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/vfs"
)

// benchKeys is the number of filler keys of the source store:
// KVTOOL_BENCH_KEYS (default 1,000,000), as in package transfer's
// benchmarks. Run briefly on a shared machine:
//
//	KVTOOL_BENCH_KEYS=200000 go test ./xferstore -run XXX -bench . -benchtime 1x
func benchKeys() int {
	if n, err := strconv.Atoi(os.Getenv("KVTOOL_BENCH_KEYS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// BenchmarkCommitDuringTransfer measures a source store's commit
// throughput (bank transfers from 4 writers) while a peer receives a
// snapshot of it (the store's base checkpoint, as serve's compaction
// leaves one, and the WAL after it as the tail), beside the same load with
// no transfer. "during" has the receiver on an in-memory file system, as
// if on another machine; "during-same-disk" has it fsyncing on the
// source's disk. The state is KVTOOL_BENCH_KEYS filler keys.
func BenchmarkCommitDuringTransfer(b *testing.B) {
	st := newSourceStore(b, b.TempDir(), benchKeys())
	defer st.Close()
	if _, err := st.Checkpoint(context.Background()); err != nil { // as serve's compaction leaves it
		b.Fatal(err)
	}
	src := NewStoreSource(st, StoreSourceOptions{})
	var idle, busy, disk, slow float64
	for i := 0; i < b.N; i++ {
		idle += commitRate(b, st, func() { time.Sleep(time.Second) })
		busy += commitRate(b, st, func() {
			if o := transferOnce(b, src, transfer.SendOptions{}, transfer.ReceiveOptions{Dir: "/r", FS: vfs.NewMem()}, nil, nil); o.recvErr != nil {
				b.Fatal(o.recvErr)
			}
		})
		slow += commitRate(b, st, func() {
			if o := transferOnce(b, src, transfer.SendOptions{MaxRate: 32 << 20}, transfer.ReceiveOptions{Dir: "/r", FS: vfs.NewMem()}, nil, nil); o.recvErr != nil {
				b.Fatal(o.recvErr)
			}
		})
		disk += commitRate(b, st, func() {
			if o := transferOnce(b, src, transfer.SendOptions{}, transfer.ReceiveOptions{Dir: b.TempDir()}, nil, nil); o.recvErr != nil {
				b.Fatal(o.recvErr)
			}
		})
	}
	b.ReportMetric(idle/float64(b.N), "txn/s-alone")
	b.ReportMetric(busy/float64(b.N), "txn/s-during")
	b.ReportMetric(busy/idle*100, "%-kept")
	b.ReportMetric(disk/float64(b.N), "txn/s-during-same-disk")
	b.ReportMetric(slow/float64(b.N), "txn/s-during-32MiB/s")
}

// commitRate runs the bank load while during runs and returns the commits
// per second acknowledged meanwhile.
func commitRate(b *testing.B, st *store.Store, during func()) float64 {
	stop := make(chan struct{})
	acked := runBank(b, st, 4, stop)
	start := time.Now()
	during()
	elapsed := time.Since(start)
	close(stop)
	return float64(len(acked())) / elapsed.Seconds()
}
