package delta

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table/tabletest"
	"github.com/kvtool/kvtool/vfs"
)

// The benchmark state is the one of checkpoint's benchmarks: 1,000,000
// keys of 16 bytes, values of 100 bytes drawn from 36 letters and digits.
const (
	benchKeys   = 1_000_000
	benchValLen = 100
	benchDirty  = benchKeys / 100 // 1% of the keys change per delta
)

type benchState struct {
	keys []string // sorted
	m    model
	raw  int64
}

var loadBenchState = sync.OnceValue(func() *benchState {
	rng := rand.New(rand.NewPCG(42, 42))
	s := &benchState{keys: make([]string, benchKeys), m: make(model, benchKeys)}
	for i := range s.keys {
		s.keys[i] = fmt.Sprintf("key:%012d", i)
		s.m[s.keys[i]] = benchValue(rng)
		s.raw += int64(len(s.keys[i]) + benchValLen)
	}
	return s
})

func benchValue(rng *rand.Rand) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	v := make([]byte, benchValLen)
	for i := range v {
		v[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return v
}

// sortedSource yields a model in the order of a sorted key list.
type sortedSource struct {
	keys []string
	m    model
}

func (s sortedSource) Ascend(fn func(string, []byte) bool) {
	for _, k := range s.keys {
		if v, ok := s.m[k]; ok && !fn(k, v) {
			return
		}
	}
}

// changes picks n random keys of s, changing 9 in 10 and deleting 1 in 10,
// in a copy-on-write overlay, and returns the dirty keys and the new state.
func changes(rng *rand.Rand, s *benchState, n int) ([]string, overlay) {
	ov := overlay{base: s.m, changed: make(model, n), deleted: map[string]bool{}}
	dirty := make([]string, 0, n)
	for len(dirty) < n {
		k := s.keys[rng.IntN(len(s.keys))]
		if rng.IntN(10) == 0 {
			ov.deleted[k] = true
		} else {
			ov.changed[k] = benchValue(rng)
		}
		dirty = append(dirty, k)
	}
	return dirty, ov
}

// overlay is a state: base with changed and deleted keys on top.
type overlay struct {
	base, changed model
	deleted       map[string]bool
}

func (o overlay) Get(k string) ([]byte, bool) {
	if v, ok := o.changed[k]; ok {
		return v, true
	}
	if o.deleted[k] {
		return nil, false
	}
	return o.base.Get(k)
}

// BenchmarkDeltaWrite writes a delta of 1% of the 1M keys beside a full
// checkpoint of the same state, on a real directory. The target:
// the delta takes at most 5% of the checkpoint's bytes and time; compare
// the file-bytes metrics and ns/op of the two sub-benchmarks.
func BenchmarkDeltaWrite(b *testing.B) {
	s := loadBenchState()
	dirty, ov := changes(rand.New(rand.NewPCG(1, 1)), s, benchDirty)
	b.Run("full-checkpoint", func(b *testing.B) {
		dir := tabletest.BenchDir(b)
		var info checkpoint.Info
		for i := 0; i < b.N; i++ {
			var err error
			info, err = checkpoint.Write(vfs.Default, dir, checkpoint.Meta{Index: 1, Shards: 1}, sortedSource{s.keys, s.m}, checkpoint.Options{})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(info.Size), "file-bytes")
	})
	b.Run("delta-1pct", func(b *testing.B) {
		dir := tabletest.BenchDir(b)
		var info Info
		for i := 0; i < b.N; i++ {
			var err error
			meta := Meta{From: 1, To: 2, Parent: format.CheckpointName(1)}
			if info, err = Write(vfs.Default, dir, meta, dirty, ov, Options{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(info.Size), "file-bytes")
		b.ReportMetric(float64(info.Keys()), "keys")
	})
}

// BenchmarkMerge merges a 1M-key base and four 1% deltas into a new
// checkpoint on a real directory. MB/s counts the key and value bytes of
// the merged state.
func BenchmarkMerge(b *testing.B) {
	s := loadBenchState()
	dir := tabletest.BenchDir(b)
	id := storeID
	base, err := checkpoint.Write(vfs.Default, dir, checkpoint.Meta{StoreID: id, Index: 100, Shards: 1}, sortedSource{s.keys, s.m}, checkpoint.Options{})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	var deltas []string
	parent, from := base.Name, uint64(100)
	for i := 0; i < 4; i++ {
		dirty, ov := changes(rng, s, benchDirty)
		d, err := Write(vfs.Default, dir, Meta{StoreID: id, From: from, To: from + 100, Parent: parent}, dirty, ov, Options{})
		if err != nil {
			b.Fatal(err)
		}
		deltas = append(deltas, d.Path)
		parent, from = d.Name, from+100
	}
	b.SetBytes(s.raw)
	b.ResetTimer()
	start := time.Now()
	var info checkpoint.Info
	for i := 0; i < b.N; i++ {
		if info, err = Merge(vfs.Default, dir, base.Path, deltas, MergeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(int(info.Keys)*b.N)/time.Since(start).Seconds(), "keys/s")
}
