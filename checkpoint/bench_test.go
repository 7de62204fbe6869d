package checkpoint

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table/tabletest"
	"github.com/kvtool/kvtool/vfs"
)

// The benchmark state: 1,000,000 keys of 16 bytes and values of 100 bytes
// drawn from 36 letters and digits (about 5.2 bits of entropy per byte), so
// that zstd finds some but not much to compress.
const (
	benchKeys   = 1_000_000
	benchValLen = 100
)

type benchState struct {
	keys []string
	vals [][]byte
	raw  int64 // key and value bytes
}

func (s *benchState) Ascend(fn func(string, []byte) bool) {
	for i, k := range s.keys {
		if !fn(k, s.vals[i]) {
			return
		}
	}
}

var loadBenchState = sync.OnceValue(func() *benchState {
	rng := rand.New(rand.NewPCG(42, 42))
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	arena := make([]byte, benchKeys*benchValLen)
	for i := range arena {
		arena[i] = alphabet[rng.IntN(len(alphabet))]
	}
	s := &benchState{keys: make([]string, benchKeys), vals: make([][]byte, benchKeys)}
	for i := range s.keys {
		s.keys[i] = fmt.Sprintf("key:%012d", i)
		s.vals[i] = arena[i*benchValLen : (i+1)*benchValLen : (i+1)*benchValLen]
		s.raw += int64(len(s.keys[i]) + benchValLen)
	}
	return s
})

// BenchmarkCheckpointWrite writes the 1M-key state as a checkpoint on a
// real directory. MB/s counts key and value bytes; compare with
// BenchmarkSequentialWriteBaseline (the target: at least half).
func BenchmarkCheckpointWrite(b *testing.B) {
	s := loadBenchState()
	for _, c := range []struct {
		name string
		opts Options
	}{{"default", Options{}}, {"zstd", Options{Codec: format.CodecZstd}}, {"uncompressed", Options{Uncompressed: true}}} {
		b.Run(c.name, func(b *testing.B) {
			dir := tabletest.BenchDir(b)
			b.SetBytes(s.raw)
			var info Info
			start := time.Now()
			for i := 0; i < b.N; i++ {
				var err error
				if info, err = Write(vfs.Default, dir, Meta{Index: 1, Shards: 1}, s, c.opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchKeys*b.N)/time.Since(start).Seconds(), "keys/s")
			b.ReportMetric(float64(info.Size)/float64(s.raw), "size/raw")
			b.ReportMetric(float64(info.Size), "file-bytes")
		})
	}
}

// BenchmarkSequentialWriteBaseline writes as many bytes as the state holds
// (keys and values) to a plain file in 256 KiB writes and fsyncs it: the
// ceiling a checkpoint write is measured against.
func BenchmarkSequentialWriteBaseline(b *testing.B) {
	s := loadBenchState()
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	dir := tabletest.BenchDir(b)
	b.SetBytes(s.raw)
	for i := 0; i < b.N; i++ {
		path := filepath.Join(dir, "baseline")
		f, err := vfs.Default.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		for n := int64(0); n < s.raw; n += int64(len(buf)) {
			if _, err := f.Write(buf[:min(int64(len(buf)), s.raw-n)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		os.Remove(path)
	}
}

// BenchmarkCheckpointWriteRatio writes the 1M-key state as a checkpoint
// compressed with the default codec, with zstd, uncompressed, and as the
// plain sequential write + fsync of as many bytes (the baseline),
// interleaved in every iteration so that a loaded machine slows all of
// them alike, and reports the median MB/s of each (key and value bytes per
// second) and compressed/seq, the default write's fraction of the
// baseline (issue 16: at least 0.5).
func BenchmarkCheckpointWriteRatio(b *testing.B) {
	s := loadBenchState()
	dir := tabletest.BenchDir(b)
	// Each kind of write runs under a pprof label (write=...), so that a
	// -cpuprofile of the benchmark shows them apart (-tagfocus).
	mbps := func(label string, f func()) (rate float64) {
		pprof.Do(context.Background(), pprof.Labels("write", label), func(context.Context) {
			start := time.Now()
			f()
			rate = float64(s.raw) / time.Since(start).Seconds() / 1e6
		})
		return rate
	}
	write := func(opts Options) func() {
		return func() {
			if _, err := Write(vfs.Default, dir, Meta{Index: 1, Shards: 1}, s, opts); err != nil {
				b.Fatal(err)
			}
		}
	}
	var seq, def, zs, raw []float64
	for i := 0; i < b.N; i++ {
		seq = append(seq, mbps("seq", func() { sequentialWrite(b, dir, s.raw) }))
		def = append(def, mbps("compressed", write(Options{})))
		zs = append(zs, mbps("zstd", write(Options{Codec: format.CodecZstd})))
		raw = append(raw, mbps("uncompressed", write(Options{Uncompressed: true})))
	}
	b.ReportMetric(median(seq), "seq-MB/s")
	b.ReportMetric(median(def), "compressed-MB/s")
	b.ReportMetric(median(zs), "zstd-MB/s")
	b.ReportMetric(median(raw), "uncompressed-MB/s")
	b.ReportMetric(median(def)/median(seq), "compressed/seq")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// sequentialWrite writes n bytes to a plain file in 256 KiB writes, fsyncs
// it and removes it.
func sequentialWrite(b *testing.B, dir string, n int64) {
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	path := filepath.Join(dir, "baseline")
	f, err := vfs.Default.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	for off := int64(0); off < n; off += int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), n-off)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	os.Remove(path)
}

// BenchmarkCheckpointGet measures point lookups in the 1M-key checkpoint
// (a binary search of the index, one block read, checksummed and decoded)
// at two block sizes: the block size trades lookup latency for ratio.
func BenchmarkCheckpointGet(b *testing.B) {
	s := loadBenchState()
	for _, bs := range []int{16 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("block=%dKiB", bs>>10), func(b *testing.B) {
			dir := tabletest.BenchDir(b)
			info, err := Write(vfs.Default, dir, Meta{Index: 1, Shards: 1}, s, Options{BlockSize: bs})
			if err != nil {
				b.Fatal(err)
			}
			r, err := Open(vfs.Default, info.Path)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			b.Run("present", func(b *testing.B) { benchGets(b, r, s, "") })
			b.Run("absent", func(b *testing.B) { benchGets(b, r, s, "x") })
		})
	}
}

func benchGets(b *testing.B, r *Reader, s *benchState, suffix string) {
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		k := []byte(s.keys[rng.IntN(benchKeys)] + suffix)
		if _, found, err := r.Get(k); err != nil || found != (suffix == "") {
			b.Fatal(found, err)
		}
	}
}
