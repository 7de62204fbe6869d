package transfer

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/kvtool/kvtool/internal/xfertest"
)

// BenchmarkTailTransfer ships a small checkpoint and a long log tail
// (KVTOOL_BENCH_TAIL entries, default 20000, each a put of a 16-byte key
// and a 400-byte value, about what a cluster member's log holds) over
// loopback TCP into a data directory, as a cluster member joining by
// snapshot receives the entries logged since its leader's checkpoint.
// Both ends run in this process: "cpu-µs/entry" is the CPU the two used
// per tail entry, the figure a long tail costs a join (the sender is the
// leader, the receiver the joiner). The directory is under
// KVTOOL_BENCH_DIR (default /dev/shm when there is one: a kernel file
// system without a disk's fsyncs, as in BenchmarkJoinThroughput).
//
//	go test ./transfer -run '^$' -bench TailTransfer -benchtime 5x
func BenchmarkTailTransfer(b *testing.B) {
	n := 20000
	if s := os.Getenv("KVTOOL_BENCH_TAIL"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	src := newMemSource(b, 1000, 1)
	if _, err := src.snapshot(); err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 400)
	for i := range n {
		src.append(fmt.Sprintf("run/%012d", i), val)
	}
	base := os.Getenv("KVTOOL_BENCH_DIR")
	if fi, err := os.Stat("/dev/shm"); base == "" && err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	var cpu float64
	for range b.N {
		dir, err := os.MkdirTemp(base, "kvtool-tailbench-")
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := xfertest.CPU()
		o := transferOnce(b, src, SendOptions{}, ReceiveOptions{Dir: dir}, nil, nil)
		cpu += (xfertest.CPU() - cpu0).Seconds()
		os.RemoveAll(dir)
		if o.sendErr != nil || o.recvErr != nil {
			b.Fatalf("send: %v; receive: %v", o.sendErr, o.recvErr)
		}
		if o.send.Entries != int64(n) {
			b.Fatalf("%d tail entries sent, want %d", o.send.Entries, n)
		}
	}
	b.ReportMetric(cpu/float64(b.N)/float64(n)*1e6, "cpu-µs/entry")
}
