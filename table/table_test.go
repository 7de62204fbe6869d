package table

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

func TestRoundTrip(t *testing.T) {
	big := func(rng *rand.Rand) []entry {
		var es []entry
		for i, n := range []int{format.MaxValueSize, 3 << 10, format.MaxValueSize - 7, 70 << 10, 0, 1} {
			es = append(es, entry{[]byte{'k', byte('a' + i)}, randBytes(rng, n), format.EntryPut})
		}
		return es
	}
	longKeys := func(rng *rand.Rand) []entry {
		es := genEntries(rng, 200, 16, 50, 0.1)
		for i := range es {
			es[i].key = append(bytes.Repeat([]byte{'x'}, format.MaxKeySize-len(es[i].key)), es[i].key...)
		}
		slices.SortFunc(es, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
		return es
	}
	cases := []struct {
		name  string
		gen   func(*rand.Rand) []entry
		block int
	}{
		{"empty", func(*rand.Rand) []entry { return nil }, 0},
		{"one", func(rng *rand.Rand) []entry { return genEntries(rng, 1, 10, 10, 0) }, 0},
		{"one-tombstone", func(rng *rand.Rand) []entry { return genEntries(rng, 1, 10, 10, 1) }, 0},
		{"many-blocks", func(rng *rand.Rand) []entry { return genEntries(rng, 5000, 24, 200, 0.2) }, 4 << 10},
		{"default-blocks", func(rng *rand.Rand) []entry { return genEntries(rng, 8000, 16, 100, 0) }, 0},
		{"big-values", big, 0},
		{"max-keys", longKeys, 16 << 10},
	}
	for _, c := range cases {
		for _, codec := range []format.BlockCodec{format.CodecNone, format.CodecZstd, format.CodecHuff0} {
			t.Run(c.name+"/"+codecName(codec), func(t *testing.T) {
				entries := c.gen(rand.New(rand.NewPCG(1, uint64(len(c.name)))))
				checkRoundTrip(t, entries, WriterOptions{BlockSize: c.block, Codec: codec, Index: 7, FromIndex: 3, Term: 2})
			})
		}
	}
}

func codecName(c format.BlockCodec) string { return c.String() }

func checkRoundTrip(t *testing.T, entries []entry, opts WriterOptions) {
	fs := vfs.NewMem()
	opts.Ext = []byte("ext fields")
	info := writeTable(t, fs, "t.delta", entries, opts)
	r := mustOpen(t, fs, "t.delta")
	got := r.Info()
	if !infoEqual(got, info) {
		t.Fatalf("Open info %+v, Close info %+v", got, info)
	}
	puts, tombs := countKinds(entries)
	if got.Puts != puts || got.Tombstones != tombs || got.Index != 7 || got.FromIndex != 3 || got.Term != 2 || string(got.Ext) != "ext fields" {
		t.Fatalf("info %+v, want %d puts %d tombstones", got, puts, tombs)
	}
	if tombs == 0 && got.StateHash != stateHash(entries) {
		t.Fatalf("hash %016x, state hash %016x", got.StateHash, stateHash(entries))
	}
	all, err := readAll(r.NewIter(nil, nil))
	if err != nil || !equalEntries(all, entries) {
		t.Fatalf("iteration: %d entries, err %v; want %d", len(all), err, len(entries))
	}
	checkGets(t, r, entries)
	rep := mustVerifyOK(t, fs, "t.delta")
	if rep.Blocks != got.Blocks || rep.Puts != puts || rep.Checksum != got.Checksum || rep.StateHash != got.StateHash {
		t.Fatalf("verify report %+v disagrees with info %+v", rep, got)
	}
}

func infoEqual(a, b Info) bool { return reflect.DeepEqual(a, b) }

func countKinds(entries []entry) (puts, tombs uint64) {
	for _, e := range entries {
		if e.kind == format.EntryPut {
			puts++
		} else {
			tombs++
		}
	}
	return puts, tombs
}

// checkGets looks up (up to about a thousand) keys, and keys just before
// and after each.
func checkGets(t *testing.T, r *Reader, entries []entry) {
	t.Helper()
	present := make(map[string]bool, len(entries))
	for _, e := range entries {
		present[string(e.key)] = true
	}
	stride := max(1, len(entries)/1000) // a Get decodes a whole block
	for i := 0; i < len(entries); i += stride {
		e := entries[i]
		v, kind, found, err := r.Get(e.key)
		if err != nil || !found || kind != e.kind || !bytes.Equal(v, e.value) {
			t.Fatalf("Get(%q) = %d bytes, %v, %v, %v; want %v", e.key, len(v), kind, found, err, e)
		}
		for _, k := range [][]byte{append(bytes.Clone(e.key), 0), e.key[:len(e.key)-1]} {
			if present[string(k)] {
				continue
			}
			if _, _, found, err := r.Get(k); found || err != nil {
				t.Fatalf("Get(absent %q) = found %v, err %v", k, found, err)
			}
		}
	}
	for _, k := range []string{"", "\x00", "\xff\xff\xff\xff"} {
		if _, _, found, err := r.Get([]byte(k)); found != present[k] || err != nil {
			t.Fatalf("Get(%q) = found %v, err %v", k, found, err)
		}
	}
}

func TestGetBetweenBlocks(t *testing.T) {
	fs := vfs.NewMem()
	var entries []entry
	for i := 0; i < 300; i++ {
		entries = append(entries, entry{[]byte{'k', byte(i / 10), byte(2 * (i % 10))}, bytes.Repeat([]byte{'v'}, 100), format.EntryPut})
	}
	writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 1000})
	r := mustOpen(t, fs, "t")
	if r.Info().Blocks < 20 {
		t.Fatalf("want many blocks, got %d", r.Info().Blocks)
	}
	// Probe every key between and around the entries: odd last bytes are
	// absent, including the gaps between one block's last key and the
	// next block's first.
	for i := 0; i < 30; i++ {
		for j := 0; j < 22; j++ {
			k := []byte{'k', byte(i), byte(j)}
			_, _, found, err := r.Get(k)
			if err != nil || found != (j%2 == 0 && j < 20) {
				t.Fatalf("Get(%v) = %v, %v", k, found, err)
			}
		}
	}
	for _, k := range [][]byte{{'a'}, {'k'}, {'k', 0}, {'k', 29, 19}, {'k', 30}, {'z'}} {
		if _, _, found, _ := r.Get(k); found {
			t.Fatalf("Get(%v) found", k)
		}
	}
}

func TestIterRanges(t *testing.T) {
	fs := vfs.NewMem()
	rng := rand.New(rand.NewPCG(2, 2))
	entries := genEntries(rng, 2000, 6, 60, 0.2)
	writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 2 << 10, Codec: format.CodecZstd})
	r := mustOpen(t, fs, "t")
	var bounds [][]byte
	for _, e := range r.index { // block boundaries are the interesting cases
		bounds = append(bounds, e.first, e.last, append(bytes.Clone(e.last), 0))
	}
	for i := 0; i < 200; i++ {
		bounds = append(bounds, randBytes(rng, 1+rng.IntN(4)))
	}
	bounds = append(bounds, nil, []byte{})
	for i := 0; i < 2000; i++ {
		start, end := bounds[rng.IntN(len(bounds))], bounds[rng.IntN(len(bounds))]
		got, err := readAll(r.NewIter(start, end))
		if want := inRange(entries, start, end); err != nil || !equalEntries(got, want) {
			t.Fatalf("[%q, %q): %d entries, err %v; want %d", start, end, len(got), err, len(want))
		}
	}
}

func inRange(entries []entry, start, end []byte) []entry {
	var out []entry
	for _, e := range entries {
		if bytes.Compare(e.key, start) >= 0 && (len(end) == 0 || bytes.Compare(e.key, end) < 0) {
			out = append(out, e)
		}
	}
	return out
}

func TestIterReadsOnlyOverlappingBlocks(t *testing.T) {
	mem := vfs.NewMem()
	var reads []string
	var mu sync.Mutex
	fs := vfs.NewErrorFS(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpRead {
			mu.Lock()
			reads = append(reads, path)
			mu.Unlock()
		}
		return nil
	}))
	entries := genEntries(rand.New(rand.NewPCG(3, 3)), 3000, 8, 40, 0)
	writeTable(t, mem, "t", entries, WriterOptions{BlockSize: 1 << 10})
	r := mustOpen(t, fs, "t")
	blocks := r.Info().Blocks
	mu.Lock()
	reads = nil
	mu.Unlock()
	mid := r.index[blocks/2]
	got, err := readAll(r.NewIter(mid.first, append(bytes.Clone(mid.last), 0)))
	if err != nil || len(got) != int(mid.count) {
		t.Fatalf("one-block range: %d entries, err %v; want %d", len(got), err, mid.count)
	}
	if _, _, _, err := r.Get(mid.first); err != nil {
		t.Fatal(err)
	}
	if len(reads) != 2 {
		t.Fatalf("a one-block range and a Get read %d times, want 2", len(reads))
	}
}

func TestWriterRejectsBadEntries(t *testing.T) {
	fs := vfs.NewMem()
	w, err := NewWriter(fs, "t", WriterOptions{Magic: format.MagicCheckpoint})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Add([]byte("b"), []byte("1"), format.EntryPut))
	for _, c := range []struct {
		key, value []byte
		kind       format.EntryKind
		want       error
	}{
		{[]byte("a"), nil, format.EntryPut, format.ErrKeyOrder},
		{[]byte("b"), nil, format.EntryPut, format.ErrKeyOrder},
		{[]byte("c"), []byte("x"), format.EntryDelete, format.ErrBadEntry},
		{[]byte("c"), nil, 9, format.ErrBadEntry},
		{[]byte("c"), make([]byte, format.MaxBlockSize), format.EntryPut, format.ErrEntryTooLarge},
	} {
		if err := w.Add(c.key, c.value, c.kind); !errors.Is(err, c.want) || !strings.Contains(err.Error(), "kvtool/table: t:") {
			t.Fatalf("Add(%q) = %v, want %v", c.key, err, c.want)
		}
	}
	must(w.Add([]byte("c"), nil, format.EntryDelete))
	info, err := w.Close()
	must(err)
	if info.Puts != 1 || info.Tombstones != 1 {
		t.Fatalf("info %+v", info)
	}
	if err := w.Add([]byte("d"), nil, format.EntryPut); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close = %v", err)
	}
	if again, err := w.Close(); err != nil || !infoEqual(again, info) {
		t.Fatalf("second Close = %+v, %v", again, err)
	}
}

// TestKeyOrderAcrossBlocks checks the order of the first key of a block
// against the block before, for both codecs (zstd blocks are compressed
// concurrently).
func TestKeyOrderAcrossBlocks(t *testing.T) {
	for _, codec := range []format.BlockCodec{format.CodecNone, format.CodecZstd, format.CodecHuff0} {
		fs := vfs.NewMem()
		w, err := NewWriter(fs, "t", WriterOptions{Magic: format.MagicDelta, BlockSize: 64, Codec: codec})
		if err != nil {
			t.Fatal(err)
		}
		val := bytes.Repeat([]byte("v"), 60)
		for _, k := range []string{"a", "b", "c", "d"} { // one entry per block
			if err := w.Add([]byte(k), val, format.EntryPut); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"c", "d"} {
			if err := w.Add([]byte(k), val, format.EntryPut); !errors.Is(err, format.ErrKeyOrder) {
				t.Fatalf("Add(%q) after \"d\" in a new block = %v", k, err)
			}
		}
		if err := w.Add([]byte("e"), val, format.EntryPut); err != nil {
			t.Fatal(err)
		}
		info, err := w.Close()
		if err != nil || info.Blocks != 5 || info.Puts != 5 {
			t.Fatalf("%+v, %v", info, err)
		}
		mustVerifyOK(t, fs, "t")
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []WriterOptions{
		{Magic: format.MagicSegment},
		{Magic: format.MagicDelta, Ext: make([]byte, format.MaxHeaderExt+1)},
		{Magic: format.MagicDelta, BlockSize: format.MaxBlockSize + 1},
		{Magic: format.MagicDelta, Codec: 7},
	} {
		fs := vfs.NewMem()
		if _, err := NewWriter(fs, "t", o); !errors.Is(err, ErrBadOptions) {
			t.Fatalf("NewWriter(%+v) = %v", o, err)
		}
		if names, _ := fs.List("."); len(names) != 0 {
			t.Fatalf("bad options left files %v", names)
		}
	}
}

func TestNothingVisibleBeforeClose(t *testing.T) {
	fs := vfs.NewMem()
	w, err := NewWriter(fs, "t", WriterOptions{Magic: format.MagicDelta, BlockSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range genEntries(rand.New(rand.NewPCG(4, 4)), 5000, 10, 100, 0) {
		if err := w.Add(e.key, e.value, e.kind); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fs.Stat("t"); !vfs.IsNotExist(err) {
		t.Fatalf("final path visible before Close: %v", err)
	}
	w.Cancel()
	if names, _ := fs.List("."); len(names) != 0 {
		t.Fatalf("Cancel left %v", names)
	}
	if _, err := w.Close(); !errors.Is(err, ErrCancelled) {
		t.Fatalf("Close after Cancel = %v", err)
	}
}

func TestMultiFrameIndex(t *testing.T) {
	defer func(n int) { indexFrameTarget = n }(indexFrameTarget)
	indexFrameTarget = 200
	fs := vfs.NewMem()
	entries := genEntries(rand.New(rand.NewPCG(5, 5)), 3000, 12, 30, 0.1)
	writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 256})
	r := mustOpen(t, fs, "t")
	frames := map[int64]bool{}
	for _, e := range r.index {
		frames[e.at] = true
	}
	if len(frames) < 10 {
		t.Fatalf("index in %d frames, want many", len(frames))
	}
	all, err := readAll(r.NewIter(nil, nil))
	if err != nil || !equalEntries(all, entries) {
		t.Fatalf("iteration: %d entries, %v", len(all), err)
	}
	mustVerifyOK(t, fs, "t")
}

func TestConcurrentReads(t *testing.T) {
	fs := vfs.NewMem()
	entries := genEntries(rand.New(rand.NewPCG(6, 6)), 4000, 10, 80, 0.1)
	writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 2 << 10, Codec: format.CodecZstd})
	r := mustOpen(t, fs, "t")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 0))
			for i := 0; i < 500; i++ {
				e := entries[rng.IntN(len(entries))]
				v, kind, found, err := r.Get(e.key)
				if err != nil || !found || kind != e.kind || !bytes.Equal(v, e.value) {
					errs <- errors.New("wrong Get under concurrency")
					return
				}
			}
			if got, err := readAll(r.NewIter(entries[100].key, entries[900].key)); err != nil || len(got) != 800 {
				errs <- errors.New("wrong iteration under concurrency")
			}
		}(uint64(g))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestVerifyProgress(t *testing.T) {
	fs := vfs.NewMem()
	writeTable(t, fs, "t", genEntries(rand.New(rand.NewPCG(7, 7)), 2000, 10, 100, 0), WriterOptions{BlockSize: 4 << 10})
	var calls int
	var last, total int64
	rep, err := Verify(fs, "t", VerifyOptions{Progress: func(done, tot int64) {
		if done < last {
			t.Fatalf("progress went back: %d after %d", done, last)
		}
		calls, last, total = calls+1, done, tot
	}})
	if err != nil || !rep.OK() {
		t.Fatal(err, rep.Err())
	}
	if calls < rep.Blocks || total != rep.Size || last != rep.Size-FooterSize {
		t.Fatalf("%d progress calls, last %d of %d; %d blocks, size %d", calls, last, total, rep.Blocks, rep.Size)
	}
}

func TestStateHashIsFormatStateHasher(t *testing.T) {
	fs := vfs.NewMem()
	entries := genEntries(rand.New(rand.NewPCG(8, 8)), 500, 10, 100, 0)
	info := writeTable(t, fs, "t", entries, WriterOptions{Magic: format.MagicCheckpoint})
	if info.StateHash != stateHash(entries) {
		t.Fatal("a table of puts does not carry the state hash of its pairs")
	}
	// A tombstone must not hash like a put of an empty value.
	a := writeTable(t, fs, "a", []entry{{[]byte("k"), nil, format.EntryDelete}}, WriterOptions{})
	b := writeTable(t, fs, "b", []entry{{[]byte("k"), []byte{}, format.EntryPut}}, WriterOptions{})
	if a.StateHash == b.StateHash {
		t.Fatal("tombstone and empty put hash alike")
	}
}

func TestOpenRejectsOtherKinds(t *testing.T) {
	fs := vfs.NewMem()
	b := format.AppendHeader(nil, format.MagicManifest, nil)
	b = append(b, make([]byte, 200)...)
	writeFile(t, fs, "m", b)
	if _, err := Open(fs, "m"); format.AsCorruption(err) == nil {
		t.Fatalf("Open(manifest) = %v", err)
	}
	if _, err := Open(fs, "absent"); !vfs.IsNotExist(err) {
		t.Fatalf("Open(absent) = %v", err)
	}
	// An unknown version is not corruption.
	b = writeTableBytes(t, nil)
	b[8] = 9
	binary.LittleEndian.PutUint64(b[16:], xxhash.Sum64(b[:16]))
	writeFile(t, fs, "v9", b)
	if _, err := Open(fs, "v9"); !errors.Is(err, format.ErrUnknownVersion) {
		t.Fatalf("Open(version 9) = %v", err)
	}
	if _, err := Verify(fs, "v9", VerifyOptions{}); !errors.Is(err, format.ErrUnknownVersion) {
		t.Fatalf("Verify(version 9) = %v", err)
	}
}

// writeTableBytes writes entries as a small uncompressed table and returns
// its bytes.
func writeTableBytes(t testing.TB, entries []entry) []byte {
	fs := vfs.NewMem()
	writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 256})
	return readFile(t, fs, "t")
}
