package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kvtool/kvtool/vfs"
)

// BenchmarkApplyBatch measures what a cluster member pays to apply one
// batch entry of puts (store.ApplyTxnAt of 40 random 100-byte puts, as a
// member's batch at 128 clients) on a replica store already holding
// 200,000 keys, in memory: the evaluation and publication, not the disk.
//
//	go test ./store -run '^$' -bench ApplyBatch -benchtime 2000x
func BenchmarkApplyBatch(b *testing.B) {
	s, err := Open(Options{FS: vfs.NewMem(), Dir: "/data", Create: true, Replica: true, WALSyncInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	val := make([]byte, 100)
	const keys, batch = 200000, 40
	idx := uint64(0)
	apply := func(first int) {
		t := &Txn{}
		for j := range batch {
			t.Ops = append(t.Ops, Op{Kind: OpPut, Key: fmt.Sprintf("k%015d", (uint64(first+j)*2654435761)%keys), Value: val})
		}
		idx++
		if _, _, err := s.ApplyTxnAt(ctx, idx, t); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < keys; i += batch {
		apply(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		apply(i * batch)
	}
}
