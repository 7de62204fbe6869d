package delta

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/vfs"
)

// model is an in-memory state: a checkpoint.Source and a Getter.
type model map[string][]byte

func (m model) Get(key string) ([]byte, bool) {
	v, ok := m[key]
	return v, ok
}

func (m model) Ascend(fn func(key string, value []byte) bool) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !fn(k, m[k]) {
			return
		}
	}
}

func (m model) hash() uint64 {
	h := format.NewStateHasher()
	m.Ascend(func(k string, v []byte) bool { h.AddString(k, v); return true })
	return h.Sum64()
}

var storeID = manifest.StoreID{7, 7, 7}

func randValue(rng *rand.Rand, n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = byte('a' + rng.IntN(26))
	}
	return v
}

func randKey(rng *rand.Rand, space int) string { return fmt.Sprintf("k%06d", rng.IntN(space)) }

func randModel(rng *rand.Rand, n, space int) model {
	m := model{}
	for len(m) < n {
		m[randKey(rng, space)] = randValue(rng, rng.IntN(60))
	}
	return m
}

// step applies a random batch of changes to m (puts, overwrites, deletes
// of present and absent keys, deletes then re-puts) and returns the dirty
// keys, with duplicates, unsorted.
func step(rng *rand.Rand, m model, ops, space int) []string {
	var dirty []string
	for i := 0; i < ops; i++ {
		k := randKey(rng, space)
		switch rng.IntN(4) {
		case 0, 1:
			m[k] = randValue(rng, rng.IntN(80))
		case 2:
			delete(m, k) // present or not
		case 3:
			delete(m, k)
			m[k] = randValue(rng, 3)
		}
		dirty = append(dirty, k)
	}
	return dirty
}

// chain is a base checkpoint and deltas written in a MemFS, with the state
// after each.
type chain struct {
	fs     *vfs.MemFS
	base   string   // path, "" if none
	deltas []string // paths
	states []model  // states[i]: after deltas[i-1] (states[0]: the base)
}

// buildChain writes a base (unless noBase) and n deltas of ops changes.
func buildChain(t testing.TB, rng *rand.Rand, n, baseKeys, ops, space int, noBase bool) *chain {
	t.Helper()
	c := &chain{fs: vfs.NewMem()}
	if err := format.MkdirAllDurable(c.fs, format.SnapDir); err != nil {
		t.Fatal(err)
	}
	// Mostly uncompressed: zstd is slow under the race detector, and the
	// codec does not change what is merged.
	opts := Options{BlockSize: 1 << 10, Uncompressed: rng.IntN(3) != 0}
	m, idx, parent := model{}, uint64(0), ""
	if !noBase {
		m, idx = randModel(rng, baseKeys, space), 100
		info, err := checkpoint.Write(c.fs, format.SnapDir, checkpoint.Meta{StoreID: storeID, Index: idx, Term: 1, Shards: 4}, m, opts)
		if err != nil {
			t.Fatal(err)
		}
		c.base, parent = info.Path, info.Name
	}
	c.states = append(c.states, maps.Clone(m))
	for i := 0; i < n; i++ {
		dirty := step(rng, m, ops, space)
		to := idx + 1 + uint64(rng.IntN(50))
		info, err := Write(c.fs, format.SnapDir, Meta{StoreID: storeID, From: idx, To: to, Term: 2, Parent: parent}, dirty, m, opts)
		if err != nil {
			t.Fatal(err)
		}
		c.deltas, c.states = append(c.deltas, info.Path), append(c.states, maps.Clone(m))
		idx, parent = to, info.Name
	}
	return c
}

// readCheckpoint returns the whole state of a checkpoint.
func readCheckpoint(t testing.TB, fs vfs.FS, path string) model {
	t.Helper()
	r, err := checkpoint.Open(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := model{}
	if err := r.Ascend(func(k, v []byte) bool { m[string(k)] = bytes.Clone(v); return true }); err != nil {
		t.Fatal(err)
	}
	return m
}

func equalModels(a, b model) bool { return maps.EqualFunc(a, b, bytes.Equal) }

// applyDelta returns base changed by the delta at path: its puts set, its
// tombstones removed.
func applyDelta(t testing.TB, fs vfs.FS, base model, path string) model {
	t.Helper()
	r, err := Open(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := maps.Clone(base)
	err = r.ForEach(func(kind format.EntryKind, k, v []byte) error {
		if kind == format.EntryDelete {
			delete(m, string(k))
		} else {
			m[string(k)] = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func snapPath(name string) string { return filepath.Join(format.SnapDir, name) }
