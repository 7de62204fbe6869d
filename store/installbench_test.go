package store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kvtool/kvtool/vfs"
)

// BenchmarkInstallFromTail is a joining cluster member's install of a
// received snapshot: a store holding a base checkpoint of 20,000 keys and
// a WAL tail of KVTOOL_BENCH_TAIL entries after it (default 20000, each a
// put of a 400-byte value, the log a leader's checkpoint is reused with)
// is opened read-only, as the member opens its staged copy, and a fresh
// replica takes its state (InstallFrom: the base restamped, the tail
// logged into its WAL). "open-cpu-ms" and "install-cpu-ms" are the CPU
// of this process in each step. On /dev/shm when there is one (the
// joiner's file system in BenchmarkJoinThroughput), else a temporary
// directory.
//
//	go test ./store -run '^$' -bench InstallFromTail -benchtime 5x
func BenchmarkInstallFromTail(b *testing.B) {
	n := 20000
	if s := os.Getenv("KVTOOL_BENCH_TAIL"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	base := b.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "kvtool-installbench-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(d)
		base = d
	}
	ctx := context.Background()
	// The staged tail is in 4 MiB segments, as transfer/ spills it.
	src, err := Open(Options{FS: vfs.Default, Dir: base + "/staged", Create: true, Replica: true, SegmentSize: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 100)
	put := func(prefix string, count int, val []byte) {
		var wait func() error
		for i := range count {
			w, _, err := src.ApplyTxnAt(ctx, src.LastIndex()+1, &Txn{Ops: []Op{{Kind: OpPut, Key: fmt.Sprintf("%s%012d", prefix, i), Value: val}}})
			if err != nil {
				b.Fatal(err)
			}
			wait = w
		}
		if err := wait(); err != nil {
			b.Fatal(err)
		}
	}
	put("base/", 20000, val)
	if _, err := src.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	put("tail/", n, make([]byte, 400))
	if err := src.Close(); err != nil {
		b.Fatal(err)
	}
	var openCPU, installCPU time.Duration
	for i := range b.N {
		c0 := installBenchCPU()
		staged, err := Open(Options{FS: vfs.Default, Dir: base + "/staged", ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		dir := fmt.Sprintf("%s/dst%d", base, i)
		dst, err := Open(Options{FS: vfs.Default, Dir: dir, Create: true, Replica: true})
		if err != nil {
			b.Fatal(err)
		}
		c1 := installBenchCPU()
		if err := dst.InstallFrom(ctx, staged); err != nil {
			b.Fatal(err)
		}
		c2 := installBenchCPU()
		openCPU, installCPU = openCPU+c1-c0, installCPU+c2-c1
		if got, want := dst.Snapshot().Hash(), staged.Snapshot().Hash(); got != want {
			b.Fatalf("installed state hash %016x, the staged store's %016x", got, want)
		}
		dst.Close()
		staged.Close()
		os.RemoveAll(dir)
	}
	b.ReportMetric(openCPU.Seconds()*1000/float64(b.N), "open-cpu-ms")
	b.ReportMetric(installCPU.Seconds()*1000/float64(b.N), "install-cpu-ms")
}

// installBenchCPU is this process's CPU time so far.
func installBenchCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
