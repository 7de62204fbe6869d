package server_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

// BenchmarkWritersDuringQuery measures commits (4 writers, one put each)
// alone and while full-table queries run back to back on the server: the
// ratio of the two ns/op is what a long query costs writers.
//
//	go test -run '^$' -bench WritersDuringQuery -benchtime 5000x ./server/
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
	write := func(b *testing.B) {
		var wg sync.WaitGroup
		var next atomic.Int64
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
					if _, err := ts.st.Put(context.Background(), fmt.Sprintf("w%09d", i), []byte("v")); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	b.Run("alone", write)
	b.Run("during-full-scan", func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int)
		go func() {
			n := 0
			for ctx.Err() == nil {
				_, err := ts.c.Query(ctx, client.QueryRequest{SQL: "SELECT count(*), sum(length(value)) FROM kv WHERE value <> ''"},
					func(client.QueryHeader) error { return nil }, func([]any) error { return nil })
				if err == nil {
					n++
				}
			}
			done <- n
		}()
		b.ResetTimer()
		write(b)
		b.StopTimer()
		cancel()
		b.ReportMetric(float64(<-done), "queries")
	})
}
