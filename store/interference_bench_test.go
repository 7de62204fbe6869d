package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCheckpointInterference measures commits (two-shard transfers
// at 128 clients) and point-read latency with and without a checkpoint of
// a large state being written the whole time, in the same run (issue 4:
// commit throughput at least 80%, read p99 at most 2x).
func BenchmarkCheckpointInterference(b *testing.B) {
	keys := openBenchKeys() / 4
	for _, ckpt := range []bool{false, true} {
		b.Run(fmt.Sprintf("checkpointing=%v", ckpt), func(b *testing.B) {
			s := openBenchWith(b, Options{MaintenanceRate: 32 << 20})
			fill(b, s, keys)
			stop := make(chan struct{})
			var done sync.WaitGroup
			var ckpts atomic.Int64
			if ckpt {
				done.Add(1)
				go func() {
					defer done.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						s.Put(context.Background(), "ckpt-marker", []byte(time.Now().String()))
						if _, err := s.Checkpoint(context.Background()); err != nil {
							b.Error(err)
							return
						}
						ckpts.Add(1)
					}
				}()
			}
			reads := readLatencies(s, stop, &done)
			runClients(b, 128, "commits", func(rng *rand.Rand) error {
				_, err := s.Commit(context.Background(), randomTransfer(rng))
				return err
			})
			close(stop)
			done.Wait()
			d := *reads
			slices.Sort(d)
			if len(d) > 0 {
				b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), "read-p99-ns")
			}
			b.ReportMetric(float64(ckpts.Load()), "checkpoints")
		})
	}
}

// fill adds n keys of 16 bytes with 100-byte values in large transactions.
func fill(b *testing.B, s *Store, n int) {
	rng := rand.New(rand.NewPCG(2, 2))
	for i := 0; i < n; i += 10000 {
		txn := &Txn{}
		for j := i; j < min(i+10000, n); j++ {
			v := make([]byte, 100)
			for k := range v {
				v[k] = byte('a' + rng.IntN(26))
			}
			txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: fmt.Sprintf("fill:%011d", j), Value: v})
		}
		if _, err := s.Commit(context.Background(), txn); err != nil {
			b.Fatal(err)
		}
	}
}

// readLatencies runs one reader until stop and returns its latencies. It
// reads in bursts with short pauses, as a client would, instead of
// spinning on a core the writers need.
func readLatencies(s *Store, stop chan struct{}, done *sync.WaitGroup) *[]time.Duration {
	var d []time.Duration
	done.Add(1)
	go func() {
		defer done.Done()
		rng := rand.New(rand.NewPCG(9, 9))
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := 0; i < 100; i++ {
				t0 := time.Now()
				s.Get(benchKeys[rng.IntN(benchAccounts)])
				d = append(d, time.Since(t0))
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	return &d
}
