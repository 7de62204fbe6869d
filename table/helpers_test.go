package table

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// update rewrites the byte-exact fixture and the fuzz seeds in testdata.
var update = flag.Bool("update", false, "rewrite testdata fixtures and fuzz seeds")

type entry struct {
	key, value []byte
	kind       format.EntryKind
}

func (e entry) String() string { return fmt.Sprintf("%s %q=%d bytes", e.kind, e.key, len(e.value)) }

// genEntries returns n entries with distinct random keys in ascending
// order; a fraction tomb of them are tombstones.
func genEntries(rng *rand.Rand, n, maxKey, maxVal int, tomb float64) []entry {
	seen := make(map[string]bool, n)
	out := make([]entry, 0, n)
	for len(out) < n {
		k := randBytes(rng, 1+rng.IntN(maxKey))
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		e := entry{key: k, kind: format.EntryPut, value: randBytes(rng, rng.IntN(maxVal+1))}
		if rng.Float64() < tomb {
			e.kind, e.value = format.EntryDelete, nil
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
	return out
}

// randBytes returns n bytes from a small alphabet, so zstd has something
// to do but cannot shrink them to nothing.
func randBytes(rng *rand.Rand, n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return b
}

func writeTable(t testing.TB, fs vfs.FS, path string, entries []entry, opts WriterOptions) Info {
	t.Helper()
	if opts.Magic == "" {
		opts.Magic = format.MagicDelta
	}
	w, err := NewWriter(fs, path, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := w.Add(e.key, e.value, e.kind); err != nil {
			t.Fatal(err)
		}
	}
	info, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// readAll returns every entry of an iterator, copied.
func readAll(it *Iter) ([]entry, error) {
	var out []entry
	for it.Next() {
		out = append(out, entry{bytes.Clone(it.Key()), bytes.Clone(it.Value()), it.Kind()})
	}
	return out, it.Close()
}

func equalEntries(a, b []entry) bool {
	return slices.EqualFunc(a, b, func(x, y entry) bool {
		return bytes.Equal(x.key, y.key) && bytes.Equal(x.value, y.value) && x.kind == y.kind
	})
}

func mustOpen(t testing.TB, fs vfs.FS, path string) *Reader {
	t.Helper()
	r, err := Open(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustVerifyOK(t testing.TB, fs vfs.FS, path string) *Report {
	t.Helper()
	rep, err := Verify(fs, path, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify %s: %v", path, rep.Err())
	}
	return rep
}

// stateHash is the state hash of the puts of entries.
func stateHash(entries []entry) uint64 {
	h := format.NewStateHasher()
	for _, e := range entries {
		if e.kind == format.EntryPut {
			h.Add(e.key, e.value)
		}
	}
	return h.Sum64()
}

func readFile(t testing.TB, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Size()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, fs vfs.FS, path string, b []byte) {
	t.Helper()
	f, err := fs.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
}
