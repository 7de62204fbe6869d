package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
)

// openBenchKeys is the state size of BenchmarkOpen (issue 4: 1,000,000 keys
// of 16 bytes with 100-byte values); KVTOOL_BENCH_KEYS overrides it.
func openBenchKeys() int {
	if n, err := strconv.Atoi(os.Getenv("KVTOOL_BENCH_KEYS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// buildLongWAL writes a data directory whose WAL holds one put per key
// (16-byte key, 100-byte value), written through the WAL directly with many
// records per fsync so that building it is quick.
func buildLongWAL(b *testing.B, dir string, keys int) {
	s, err := Open(Options{Dir: dir, Create: true})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	val := make([]byte, 100)
	var key [16]byte
	var last *segment.Pending
	for i := 0; i < keys; i++ {
		binary.BigEndian.PutUint64(key[:8], rng.Uint64())
		binary.BigEndian.PutUint64(key[8:], uint64(i))
		for j := range val {
			val[j] = byte('a' + rng.IntN(26))
		}
		rec := format.AppendTxnRecord(nil, []format.TxnEffect{{Kind: format.TxnPut, Key: string(key[:]), Value: val}})
		if last, err = s.log.Enqueue(format.FrameWALTxn, rec); err != nil {
			b.Fatal(err)
		}
		if i%4096 == 4095 {
			if err := last.Wait(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := last.Wait(); err != nil {
		b.Fatal(err)
	}
	if err := s.log.Close(); err != nil {
		b.Fatal(err)
	}
	s.lock.Close()
}

// BenchmarkOpen measures recovery of a 1M-key state: from the WAL alone
// (reported as records/s) and from a checkpoint plus a short WAL tail (1%
// of the records), in the same run.
func BenchmarkOpen(b *testing.B) {
	keys := openBenchKeys()
	dir := benchDir(b)
	buildLongWAL(b, dir, keys)
	b.Run("wal-only", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			start := time.Now()
			s, err := Open(Options{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			if got := s.Snapshot().Len(); got != keys {
				b.Fatalf("recovered %d keys, want %d", got, keys)
			}
			b.ReportMetric(float64(keys)/el.Seconds(), "records/s")
			s.Close()
		}
	})
	// Checkpoint, then a tail of 1% more records.
	s, err := Open(Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Compact(context.Background()); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < keys/100; i++ {
		if _, err := s.Put(context.Background(), fmt.Sprintf("tail:%011d", i), make([]byte, 100)); err != nil && i == 0 {
			b.Fatal(err)
		}
	}
	s.Close()
	b.Run("checkpoint+tail", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			start := time.Now()
			s, err := Open(Options{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			b.ReportMetric(el.Seconds()*1e3, "open-ms")
			b.ReportMetric(float64(s.Snapshot().Len())/el.Seconds(), "keys/s")
			s.Close()
		}
	})
}
