package datadir_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// testDir is a data directory built by a real store, with the hash of its
// state at every index it went through.
type testDir struct {
	dir    string
	man    manifest.Manifest
	last   uint64            // applied index at the end
	hashes map[uint64]uint64 // index -> state hash after it
	keys   map[uint64]int    // index -> key count after it
}

// buildDir runs a workload on a store with small segments: puts,
// Compact (base checkpoint, WAL dropped below it), more writes, two
// deltas, and a WAL tail. The manifest ends with a base, two deltas and a
// WAL first index inside the retained segments.
func buildDir(t *testing.T) *testDir {
	t.Helper()
	td := &testDir{dir: filepath.Join(t.TempDir(), "data"), hashes: map[uint64]uint64{}, keys: map[uint64]int{}}
	st, err := store.Open(store.Options{Dir: td.dir, Create: true, Shards: 4, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	w := &workload{t: t, st: st, td: td, model: map[string]string{}, rng: rand.New(rand.NewPCG(1, 2))}
	ctx := context.Background()
	w.writes(200, 150)
	if _, err := st.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	w.writes(100, 250)
	if _, err := st.Delta(ctx); err != nil {
		t.Fatal(err)
	}
	w.writes(100, 250)
	if _, err := st.Delta(ctx); err != nil {
		t.Fatal(err)
	}
	w.writes(60, 250)
	td.man = st.CurrentManifest()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = nil
	if td.man.Base == nil || len(td.man.Deltas) != 2 || td.man.WALFirstIndex != td.man.Base.Index+1 {
		t.Fatalf("unexpected manifest %+v", td.man)
	}
	return td
}

// workload writes to a store and keeps a model of its state.
type workload struct {
	t     *testing.T
	st    *store.Store
	td    *testDir
	model map[string]string
	rng   *rand.Rand
}

// writes makes n writes over keys key:0..keys-1 (one in ten a delete),
// recording the model's hash at the index of each write that changed it.
func (w *workload) writes(n, keys int) {
	w.t.Helper()
	ctx := context.Background()
	for range n {
		k := fmt.Sprintf("key:%04d", w.rng.IntN(keys))
		if w.rng.IntN(10) == 0 {
			w.del(ctx, k)
		} else {
			w.put(ctx, k, fmt.Sprintf("value-%d-%x", w.rng.Uint64(), w.rng.Uint64()))
		}
	}
}

func (w *workload) put(ctx context.Context, k, v string) {
	idx, err := w.st.Put(ctx, k, []byte(v))
	if err != nil {
		w.t.Fatal(err)
	}
	w.model[k] = v
	w.record(idx)
}

func (w *workload) del(ctx context.Context, k string) {
	_, present := w.model[k]
	idx, err := w.st.Delete(ctx, k)
	if err != nil {
		w.t.Fatal(err)
	}
	delete(w.model, k)
	if present {
		// Deleting an absent key logs nothing; the index returned is then
		// the last one that touched the key's shard, not a new one.
		w.record(idx)
	}
}

func (w *workload) record(idx uint64) {
	w.td.hashes[idx], w.td.keys[idx] = modelHash(w.model), len(w.model)
	w.td.last = idx
}

func modelHash(m map[string]string) uint64 {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := format.NewStateHasher()
	for _, k := range keys {
		h.AddString(k, []byte(m[k]))
	}
	return h.Sum64()
}

func (td *testDir) snapPath(name string) string { return filepath.Join(td.dir, format.SnapDir, name) }

// segments returns the paths of the WAL segments, oldest first.
func (td *testDir) segments(t *testing.T) []string {
	t.Helper()
	names, err := os.ReadDir(filepath.Join(td.dir, format.WALDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if _, ok := format.ParseSegmentName(n.Name()); ok {
			out = append(out, filepath.Join(td.dir, format.WALDir, n.Name()))
		}
	}
	return out
}

// readOnlyFS fails the test on any operation that could change a file.
func readOnlyFS(t *testing.T) vfs.FS {
	return vfs.NewErrorFS(vfs.Default, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		switch op {
		case vfs.OpCreate, vfs.OpWrite, vfs.OpSync, vfs.OpTruncate, vfs.OpPreallocate,
			vfs.OpMkdir, vfs.OpRemove, vfs.OpRename, vfs.OpSyncDir, vfs.OpLock:
			t.Errorf("%s %s on a read-only path", op, path)
			return fmt.Errorf("refused %s %s", op, path)
		}
		return nil
	}))
}

// flipByte inverts the byte at off of path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
