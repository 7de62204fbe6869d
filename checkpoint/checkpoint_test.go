package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// state is an in-memory Source.
type state map[string][]byte

func (s state) Ascend(fn func(key string, value []byte) bool) {
	for _, k := range slices.Sorted(mapsKeys(s)) {
		if !fn(k, s[k]) {
			return
		}
	}
}

func mapsKeys(s state) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range s {
			if !yield(k) {
				return
			}
		}
	}
}

func (s state) hash() uint64 {
	h := format.NewStateHasher()
	s.Ascend(func(k string, v []byte) bool { h.AddString(k, v); return true })
	return h.Sum64()
}

func randState(rng *rand.Rand, n, maxVal int) state {
	s := make(state, n)
	for len(s) < n {
		v := make([]byte, rng.IntN(maxVal+1))
		for i := range v {
			v[i] = byte('a' + rng.IntN(26))
		}
		s[fmt.Sprintf("key-%08x", rng.Uint32())] = v
	}
	return s
}

var testMeta = Meta{StoreID: manifest.StoreID{1, 2, 3}, Index: 1234, Term: 5, Shards: 16}

func newDir(t testing.TB) *vfs.MemFS {
	fs := vfs.NewMem()
	if err := format.MkdirAllDurable(fs, format.SnapDir); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestWriteOpenRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 3000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			fs := newDir(t)
			src := randState(rand.New(rand.NewPCG(1, uint64(n))), n, 300)
			var progress int64
			info, err := Write(fs, format.SnapDir, testMeta, src, Options{BlockSize: 8 << 10, Progress: func(keys, _ int64) { progress = keys }})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(format.SnapDir, format.CheckpointName(testMeta.Index))
			if info.Path != path || info.Name != format.CheckpointName(testMeta.Index) || info.Keys != uint64(n) ||
				info.StateHash != src.hash() || info.Meta != testMeta || progress != int64(n) {
				t.Fatalf("info %+v, progress %d", info, progress)
			}
			ref := info.Ref()
			if ref.Name != info.Name || ref.Index != testMeta.Index || ref.FromIndex != 0 || ref.Size != info.Size || ref.Checksum != info.Checksum {
				t.Fatalf("ref %+v", ref)
			}
			r, err := Open(fs, path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.Meta() != testMeta || r.Info() != info {
				t.Fatalf("Open: meta %+v info %+v; wrote %+v", r.Meta(), r.Info(), info)
			}
			checkContents(t, r, src)
			if rep, err := Verify(fs, path, table.VerifyOptions{}); err != nil || !rep.OK() {
				t.Fatalf("Verify: %v, %v", err, rep.Err())
			}
		})
	}
}

// checkContents compares a checkpoint with a state: iteration, Ascend and
// Get of present and absent keys.
func checkContents(t *testing.T, r *Reader, src state) {
	t.Helper()
	got := state{}
	if err := r.Ascend(func(k, v []byte) bool { got[string(k)] = bytes.Clone(v); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(src) {
		t.Fatalf("Ascend: %d pairs, want %d", len(got), len(src))
	}
	for k, v := range src {
		if !bytes.Equal(got[k], v) {
			t.Fatalf("Ascend: %q differs", k)
		}
		gv, found, err := r.Get([]byte(k))
		if err != nil || !found || !bytes.Equal(gv, v) {
			t.Fatalf("Get(%q) = %v, %v", k, found, err)
		}
		if _, found, err := r.Get([]byte(k + "\x00")); found || err != nil {
			t.Fatalf("Get(absent) = %v, %v", found, err)
		}
	}
}

func TestWriteRejectsUnsortedSource(t *testing.T) {
	fs := newDir(t)
	bad := SourceFunc(func(fn func(string, []byte) bool) {
		fn("b", nil)
		fn("a", nil)
	})
	if _, err := Write(fs, format.SnapDir, testMeta, bad, Options{}); !errors.Is(err, format.ErrKeyOrder) || !strings.HasPrefix(err.Error(), "kvtool/checkpoint: ") {
		t.Fatalf("Write(unsorted) = %v", err)
	}
	if names, _ := fs.List(format.SnapDir); len(names) != 0 {
		t.Fatalf("failed write left %v", names)
	}
	if _, err := Write(fs, format.SnapDir, Meta{Shards: -1}, state{}, Options{}); !errors.Is(err, ErrBadMeta) {
		t.Fatalf("Write(bad meta) = %v", err)
	}
}

func TestListSkipsOtherAndTempFiles(t *testing.T) {
	fs := newDir(t)
	for _, idx := range []uint64{30, 10, 20} {
		m := testMeta
		m.Index = idx
		if _, err := Write(fs, format.SnapDir, m, randState(rand.New(rand.NewPCG(idx, 0)), 10, 10), Options{}); err != nil {
			t.Fatal(err)
		}
	}
	dir := format.SnapDir
	writeFile(t, fs, filepath.Join(dir, format.TempName(format.CheckpointName(40), 7)), []byte("half a checkpoint"))
	writeFile(t, fs, filepath.Join(dir, "README"), []byte("x"))
	writeFile(t, fs, filepath.Join(dir, format.CheckpointName(50)), []byte("damaged"))
	list, err := List(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range list {
		got = append(got, fmt.Sprintf("%d:%v", i.Meta.Index, i.Err != nil))
	}
	if strings.Join(got, " ") != "10:false 20:false 30:false 0:true" {
		t.Fatalf("List = %v", got)
	}
	if format.AsCorruption(list[3].Err) == nil || list[3].Name != format.CheckpointName(50) {
		t.Fatalf("damaged entry %+v", list[3])
	}
}

func TestOpenChecksHeaderFooterAndName(t *testing.T) {
	fs := newDir(t)
	write := func(path string, magic string, ext []byte, idx, from, term uint64, tomb bool) {
		w, err := table.NewWriter(fs, path, table.WriterOptions{Magic: magic, Ext: ext, Index: idx, FromIndex: from, Term: term})
		if err != nil {
			t.Fatal(err)
		}
		kind := format.EntryPut
		if tomb {
			kind = format.EntryDelete
		}
		if err := w.Add([]byte("k"), nil, kind); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	ext := Kind.AppendExt(nil, testMeta)
	dir := format.SnapDir
	cases := map[string]func(string){
		"delta-magic":     func(p string) { write(p, format.MagicDelta, ext, 1234, 0, 5, false) },
		"short-ext":       func(p string) { write(p, format.MagicCheckpoint, ext[:20], 1234, 0, 5, false) },
		"footer-index":    func(p string) { write(p, format.MagicCheckpoint, ext, 1235, 0, 5, false) },
		"footer-term":     func(p string) { write(p, format.MagicCheckpoint, ext, 1234, 0, 6, false) },
		"footer-from":     func(p string) { write(p, format.MagicCheckpoint, ext, 1234, 1, 5, false) },
		"tombstone":       func(p string) { write(p, format.MagicCheckpoint, ext, 1234, 0, 5, true) },
		"name-says-other": nil,
	}
	for name, mk := range cases {
		path := filepath.Join(dir, name)
		if mk == nil {
			path = filepath.Join(dir, format.CheckpointName(99))
			write(path, format.MagicCheckpoint, ext, 1234, 0, 5, false)
		} else {
			mk(path)
		}
		if _, err := Open(fs, path); format.AsCorruption(err) == nil {
			t.Errorf("%s: Open = %v, want corruption", name, err)
		}
		rep, err := Verify(fs, path, table.VerifyOptions{})
		if err != nil || rep.OK() {
			t.Errorf("%s: Verify = %v, %v", name, err, rep)
		}
	}
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
