// Package tabletest is the test support both kinds of table file share.
// Its crash harness runs a write on a crash-simulating file system, takes
// a crash image at every step, and checks each image: checkpoint writes,
// delta writes and merges all go through it, so a crash point one of them
// misses the others miss too. FuzzExt is the fuzz target of every kind's
// header ext.
//
// It is test support only; nothing outside _test.go files imports it. It
// imports table, so only table's external tests (package table_test) may
// use it.
package tabletest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// CrashImages runs work on a clone of the durable state of fs and returns
// crash images taken at every sync (exactly the synced state, and a
// random partial persistence with a torn last write), before every write
// and rename (partial persistence), and after work returned (the last
// image). seed seeds the partial persistence: a failing seed reproduces.
func CrashImages(t testing.TB, fs *vfs.MemFS, seed uint64, work func(vfs.FS) error) []*vfs.MemFS {
	t.Helper()
	mem := fs.CrashClone(vfs.CrashOptions{}) // everything set up is durable
	rng := rand.New(rand.NewPCG(seed, 1))
	var mu sync.Mutex
	var images []*vfs.MemFS
	snap := func(opts vfs.CrashOptions) {
		mu.Lock()
		images = append(images, mem.CrashClone(opts))
		mu.Unlock()
	}
	mem.SetSyncHook(func(int64) {
		snap(vfs.CrashOptions{})
		snap(vfs.CrashOptions{Rand: rng, TearLast: true})
	})
	efs := vfs.NewErrorFS(mem, vfs.InjectorFunc(func(op vfs.Op, _ string) error {
		if op == vfs.OpWrite || op == vfs.OpRename {
			snap(vfs.CrashOptions{Rand: rng, TearLast: true})
		}
		return nil
	}))
	if err := work(efs); err != nil {
		t.Fatal(err)
	}
	mem.SetSyncHook(nil)
	return append(images, mem.CrashClone(vfs.CrashOptions{}))
}

// CheckImages calls present on every image (i is its place in images),
// which checks the image and reports whether what was written, named what
// in failures, is in it. It must be in the last image, taken after the
// write returned, and missing from another: otherwise the crash points
// miss the interesting cases.
func CheckImages(t testing.TB, images []*vfs.MemFS, what string, present func(i int, img *vfs.MemFS) bool) {
	t.Helper()
	n := 0
	for i, img := range images {
		if present(i, img) {
			n++
		} else if i == len(images)-1 {
			t.Fatalf("%s missing after the write returned", what)
		}
	}
	if n == 0 || n == len(images) {
		t.Fatalf("%s present in %d of %d crash images: the crash points miss the interesting cases", what, n, len(images))
	}
}

// FuzzExt fuzzes the header ext of kind k, seeded with the ext of every
// seed (add raw seeds with f.Add before): it decodes without panicking,
// damage is corruption, and whatever decodes is metadata the kind can
// record that re-encodes to the same bytes.
func FuzzExt[M, I any](f *testing.F, k *table.Kind[M, I], seeds ...M) {
	for _, m := range seeds {
		f.Add(k.AppendExt(nil, m))
	}
	f.Fuzz(func(t *testing.T, ext []byte) {
		m, err := k.ParseExt(ext, k.Noun)
		if err != nil {
			if !errors.Is(err, format.ErrCorruption) {
				t.Fatalf("error is not corruption: %v", err)
			}
			return
		}
		if err := k.Check(m); err != nil {
			t.Fatalf("decoded an invalid meta: %v", err)
		}
		if again := k.AppendExt(nil, m); !bytes.Equal(again, ext) {
			t.Fatalf("re-encoded ext differs:\n%x\n%x", again, ext)
		}
	})
}

// BenchDir returns a fresh directory under KVTOOL_BENCH_DIR (default: the
// system temporary directory), removed after the benchmark.
func BenchDir(b testing.TB) string {
	base := os.Getenv("KVTOOL_BENCH_DIR")
	if base == "" {
		base = os.TempDir()
	}
	dir, err := os.MkdirTemp(base, "kvtool-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
