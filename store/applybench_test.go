package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kvtool/kvtool/vfs"
)

// BenchmarkApplyBatch measures what a cluster member pays to apply batch
// entries of random 100-byte puts (3 a batch, as at 16 clients; 40, as at
// 128) on a replica store already holding 200,000 keys, in memory: the
// evaluation and publication, not the disk. The entries are applied one
// at a time (run=1) or in runs of 2 (store.ApplyTxnsAt, as a member
// applies the committed entries of a Ready: 1.8 on average at 16 and 128
// clients). An op is one entry; cpu-ns/op is the process's CPU time
// (less moved by other processes' load than the wall time).
//
//	go test ./store -run '^$' -bench ApplyBatch -benchtime 4000x
func BenchmarkApplyBatch(b *testing.B) {
	for _, batch := range []int{3, 40} {
		for _, run := range []int{1, 2} {
			b.Run(fmt.Sprintf("puts=%d/run=%d", batch, run), func(b *testing.B) { benchApplyBatch(b, batch, run) })
		}
	}
}

func benchApplyBatch(b *testing.B, batch, run int) {
	s, err := Open(Options{FS: vfs.NewMem(), Dir: "/data", Create: true, Replica: true, WALSyncInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	val := make([]byte, 100)
	const keys = 200000
	idx := uint64(1)
	next := 0
	apply := func(n int) {
		ents := make([]EntryTxn, n)
		for i := range ents {
			t := &Txn{}
			for range batch {
				t.Ops = append(t.Ops, Op{Kind: OpPut, Key: fmt.Sprintf("k%015d", (uint64(next)*2654435761)%keys), Value: val})
				next++
			}
			ents[i].Txn = t
		}
		if _, _, err := s.ApplyTxnsAt(ctx, idx, ents); err != nil {
			b.Fatal(err)
		}
		idx += uint64(n)
	}
	for next < keys {
		apply(1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i += run {
		apply(min(run, b.N-i))
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}
