package cluster

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// benchCluster starts three members on the real file system (each in its
// own directory under dir, so every write is fsync'd) talking TCP over
// loopback.
func benchCluster(b *testing.B, dir string) []*Node {
	b.Helper()
	ids := []uint64{1, 2, 3}
	addrs, lns := map[uint64]string{}, map[uint64]net.Listener{}
	for _, id := range ids {
		l := listen(b)
		addrs[id], lns[id] = l.Addr().String(), l
	}
	var nodes []*Node
	for _, id := range ids {
		d := filepath.Join(dir, fmt.Sprint("n", id))
		st, err := store.Open(store.Options{FS: vfs.Default, Dir: d, Create: true, Replica: true, WALSyncInterval: StoreWALSync})
		if err != nil {
			b.Fatal(err)
		}
		tr, err := NewTCPTransport(TCPConfig{ID: id, ClusterID: 1, Listener: lns[id], Peers: addrs, Secret: testSecret})
		if err != nil {
			b.Fatal(err)
		}
		n, err := Start(Config{ID: id, ClusterID: 1, Peers: ids, FS: vfs.Default, Dir: d, Store: st, Transport: tr, TickInterval: 20 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close(); st.Close() })
		nodes = append(nodes, n)
	}
	waitFor(b, "a leader", func() bool { l, _ := nodes[0].Leader(); return l != 0 })
	return nodes
}

// BenchmarkClusterPut measures durable puts spread over the three members
// at 1, 16 and 128 concurrent clients, with p50/p99 latency, beside the
// single-node store's Commit on the same disk in the same run.
//
//	go test -run XXX -bench ClusterPut -benchtime 2000x ./cluster/
func BenchmarkClusterPut(b *testing.B) {
	for _, clients := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("cluster/clients=%d", clients), func(b *testing.B) {
			nodes := benchCluster(b, b.TempDir())
			runClients(b, clients, func(i int, key string) error {
				_, err := nodes[i%3].Propose(context.Background(), Request{Txn: put(key, "value-of-some-size-0123456789")})
				return err
			})
		})
		b.Run(fmt.Sprintf("single/clients=%d", clients), func(b *testing.B) {
			st, err := store.Open(store.Options{FS: vfs.Default, Dir: b.TempDir(), Create: true})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			runClients(b, clients, func(i int, key string) error {
				_, err := st.Commit(context.Background(), put(key, "value-of-some-size-0123456789"))
				return err
			})
		})
	}
}

// runClients runs b.N operations over clients goroutines and reports
// operations per second and latency percentiles.
func runClients(b *testing.B, clients int, op func(i int, key string) error) {
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(i, fmt.Sprintf("key-%08d", i)); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
