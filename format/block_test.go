package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

type testEntry struct {
	key, value []byte
	kind       EntryKind
}

func (e testEntry) String() string { return fmt.Sprintf("%q %s %q", e.key, e.kind, e.value) }

// entriesOf returns the entries of a block, copied.
func entriesOf(b *Block) []testEntry {
	var out []testEntry
	for i := 0; i < b.Len(); i++ {
		k, v, kind := b.Entry(i)
		out = append(out, testEntry{bytes.Clone(k), bytes.Clone(v), kind})
	}
	return out
}

func sameEntries(a, b []testEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].key, b[i].key) || !bytes.Equal(a[i].value, b[i].value) || a[i].kind != b[i].kind {
			return false
		}
	}
	return true
}

// encodeBlock builds one block payload from sorted entries.
func encodeBlock(t testing.TB, codec BlockCodec, entries []testEntry) []byte {
	t.Helper()
	w := NewBlockWriter(codec)
	for _, e := range entries {
		if err := w.Add(e.key, e.value, e.kind); err != nil {
			t.Fatalf("Add(%v): %v", e, err)
		}
	}
	return w.Finish(nil)
}

// benchEntries returns n sorted entries with 16-byte keys and 100-byte
// values that compress like real data (a repeated text with a counter).
func benchEntries(n int) []testEntry {
	out := make([]testEntry, n)
	for i := range out {
		out[i] = testEntry{
			key:   fmt.Appendf(nil, "user:%011d", i*7),
			value: fmt.Appendf(nil, "%-100.100s", fmt.Sprintf("{\"id\":%d,\"name\":\"account holder %d\",\"balance\":%d,\"tags\":[\"a\",\"b\"]}", i, i%97, i*31%1000)),
			kind:  EntryPut,
		}
	}
	return out
}

// randomEntries returns n sorted entries with random bytes.
func randomEntries(r *rand.Rand, n int) []testEntry {
	seen := map[string]bool{}
	var keys []string
	for len(keys) < n {
		k := make([]byte, r.IntN(20))
		for i := range k {
			k[i] = byte(r.IntN(4)) // a small alphabet makes shared prefixes
		}
		if !seen[string(k)] {
			seen[string(k)] = true
			keys = append(keys, string(k))
		}
	}
	sortStrings(keys)
	out := make([]testEntry, n)
	for i, k := range keys {
		out[i] = testEntry{key: []byte(k), kind: EntryPut}
		if r.IntN(4) == 0 {
			out[i].kind = EntryDelete
		} else {
			out[i].value = make([]byte, r.IntN(300))
			for j := range out[i].value {
				out[i].value[j] = byte(r.IntN(256))
			}
		}
	}
	return out
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestBlockRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := map[string][]testEntry{
		"empty":       nil,
		"one":         {{[]byte("k"), []byte("v"), EntryPut}},
		"empty key":   {{nil, []byte("v"), EntryPut}, {[]byte("a"), nil, EntryDelete}},
		"empty value": {{[]byte("a"), nil, EntryPut}},
		"long lengths": {
			{bytes.Repeat([]byte("k"), 300), bytes.Repeat([]byte("v"), 70000), EntryPut},
			{bytes.Repeat([]byte("l"), 20000), nil, EntryDelete},
		},
		"bench":  benchEntries(500),
		"random": randomEntries(r, 300),
	}
	for name, entries := range cases {
		for _, codec := range []BlockCodec{CodecNone, CodecZstd, CodecHuff0} {
			t.Run(fmt.Sprintf("%s/%d", name, codec), func(t *testing.T) {
				payload := encodeBlock(t, codec, entries)
				b, err := DecodeBlock(payload, "b", 0)
				if err != nil {
					t.Fatal(err)
				}
				if got := entriesOf(b); !sameEntries(got, entries) {
					t.Fatalf("decoded %d entries, want %d", len(got), len(entries))
				}
				raw := 0
				for _, e := range entries {
					raw += EntrySize(e.key, e.value)
				}
				if b.Size() != raw || int(binary.LittleEndian.Uint32(payload[1:])) != raw {
					t.Fatalf("size %d, want %d", b.Size(), raw)
				}
				checkBlockAccess(t, b, entries)
			})
		}
	}
}

// checkBlockAccess checks Entry, Key, SeekGE and the iterator against the
// entries the block was built from.
func checkBlockAccess(t *testing.T, b *Block, entries []testEntry) {
	t.Helper()
	it := b.Iter()
	for i, e := range entries {
		if !it.Next() || !bytes.Equal(it.Key(), e.key) || !bytes.Equal(it.Value(), e.value) || it.Kind() != e.kind {
			t.Fatalf("iterator entry %d: %q %s, want %v", i, it.Key(), it.Kind(), e)
		}
		if !bytes.Equal(b.Key(i), e.key) {
			t.Fatalf("Key(%d) = %q", i, b.Key(i))
		}
		if got := b.SeekGE(e.key); got != i {
			t.Fatalf("SeekGE(key %d) = %d", i, got)
		}
		// Just after key i (key + 0x00) comes entry i+1.
		if got := b.SeekGE(append(bytes.Clone(e.key), 0)); got != i+1 {
			t.Fatalf("SeekGE(key %d + 0) = %d", i, got)
		}
	}
	if it.Next() || it.Key() != nil {
		t.Fatal("iterator went past the end")
	}
	if len(entries) > 0 {
		if b.SeekGE(nil) != 0 {
			t.Fatal("SeekGE(nil) is not 0")
		}
		it.SeekGE(entries[len(entries)/2].key)
		if !it.Next() || !bytes.Equal(it.Key(), entries[len(entries)/2].key) {
			t.Fatalf("iterator SeekGE then Next gave %q", it.Key())
		}
	}
	if b.SeekGE(bytes.Repeat([]byte{0xff}, 30000)) != len(entries) {
		t.Fatal("SeekGE past the last key is not Len")
	}
}

func TestBlockCodecChoice(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	random := randomEntries(r, 50)
	for i := range random { // incompressible values
		random[i].kind, random[i].value = EntryPut, make([]byte, 200)
		for j := range random[i].value {
			random[i].value[j] = byte(r.Uint32())
		}
	}
	tests := []struct {
		name    string
		codec   BlockCodec
		entries []testEntry
		want    BlockCodec
	}{
		{"none stays none", CodecNone, benchEntries(100), CodecNone},
		{"compressible", CodecZstd, benchEntries(100), CodecZstd},
		{"incompressible", CodecZstd, random, CodecNone},
		{"empty", CodecZstd, nil, CodecNone},
		{"huff0 compressible", CodecHuff0, benchEntries(100), CodecHuff0},
		{"huff0 incompressible", CodecHuff0, random, CodecNone},
		{"huff0 empty", CodecHuff0, nil, CodecNone},
		{"huff0 past its limit", CodecHuff0, hugeEntries(Huff0MaxBlock + 1), CodecZstd},
		{"auto on repeated strings", CodecAuto, benchEntries(500), CodecZstd},
		{"auto on random letters", CodecAuto, letterEntries(500), CodecHuff0},
		{"auto incompressible", CodecAuto, random, CodecNone},
		{"auto empty", CodecAuto, nil, CodecNone},
		{"auto past huff0's limit", CodecAuto, hugeEntries(Huff0MaxBlock + 1), CodecZstd},
	}
	for _, tt := range tests {
		payload := encodeBlock(t, tt.codec, tt.entries)
		if BlockCodec(payload[0]) != tt.want {
			t.Errorf("%s: codec %d, want %d", tt.name, payload[0], tt.want)
		}
		b, err := DecodeBlock(payload, "b", 0)
		if err != nil || b.Codec() != tt.want {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// letterEntries returns n sorted entries whose 100-byte values are random
// letters and digits: entropy coding finds about as much as zstd's match
// search does.
func letterEntries(n int) []testEntry {
	r := rand.New(rand.NewPCG(5, 5))
	out := make([]testEntry, n)
	for i := range out {
		v := make([]byte, 100)
		for j := range v {
			v[j] = "abcdefghijklmnopqrstuvwxyz0123456789"[r.IntN(36)]
		}
		out[i] = testEntry{key: fmt.Appendf(nil, "key:%012d", i), value: v, kind: EntryPut}
	}
	return out
}

// hugeEntries returns compressible entries of more than n bytes in all.
func hugeEntries(n int) []testEntry {
	var es []testEntry
	for size := 0; size <= n; size += 1000 {
		v := make([]byte, 990)
		for j := range v {
			v[j] = "abcd"[(j*j+size)%4]
		}
		es = append(es, testEntry{key: fmt.Appendf(nil, "k%08d", size), value: v, kind: EntryPut})
	}
	return es
}

func TestBlockWriterErrors(t *testing.T) {
	w := NewBlockWriter(CodecZstd)
	mustAdd := func(k, v string, kind EntryKind) {
		t.Helper()
		if err := w.Add([]byte(k), []byte(v), kind); err != nil {
			t.Fatal(err)
		}
	}
	mustAdd("b", "1", EntryPut)
	for _, tt := range []struct {
		k, v string
		kind EntryKind
		err  error
	}{
		{"b", "x", EntryPut, ErrKeyOrder},
		{"a", "x", EntryPut, ErrKeyOrder},
		{"", "x", EntryPut, ErrKeyOrder},
		{"c", "x", 0, ErrBadEntry},
		{"c", "x", 3, ErrBadEntry},
		{"c", "x", EntryDelete, ErrBadEntry},
	} {
		if err := w.Add([]byte(tt.k), []byte(tt.v), tt.kind); !errors.Is(err, tt.err) {
			t.Errorf("Add(%q, %q, %d) = %v, want %v", tt.k, tt.v, tt.kind, err, tt.err)
		}
	}
	if w.Len() != 1 || w.Size() != EntrySize([]byte("b"), []byte("1")) {
		t.Fatalf("failed Adds changed the block: %d entries, %d bytes", w.Len(), w.Size())
	}
	// The order carries across Finish and is forgotten by Reset.
	w.Finish(nil)
	if err := w.Add([]byte("a"), nil, EntryPut); !errors.Is(err, ErrKeyOrder) {
		t.Fatalf("order not kept across Finish: %v", err)
	}
	w.Reset()
	mustAdd("a", "", EntryDelete)
	if w.Len() != 1 || string(w.FirstKey()) != "a" || string(w.LastKey()) != "a" {
		t.Fatalf("after Reset: %d %q %q", w.Len(), w.FirstKey(), w.LastKey())
	}
}

func TestBlockWriterSizeLimits(t *testing.T) {
	var w BlockWriter // the zero value writes uncompressed blocks
	big := make([]byte, MaxBlockSize)
	if err := w.Add([]byte("k"), big, EntryPut); !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("entry over MaxBlockSize: %v", err)
	}
	half := make([]byte, MaxBlockSize/2)
	if err := w.Add([]byte("a"), half, EntryPut); err != nil {
		t.Fatal(err)
	}
	if err := w.Add([]byte("b"), half, EntryPut); !errors.Is(err, ErrBlockFull) {
		t.Fatalf("second half: %v", err)
	}
	if w.Len() != 1 {
		t.Fatalf("Len %d", w.Len())
	}
	// The largest entry that fits fills a block exactly.
	w.Reset()
	fill := make([]byte, MaxBlockSize-7) // key length 1, value length 4 (a 22-bit uvarint), kind 1, key 1
	if EntrySize([]byte("k"), fill) != MaxBlockSize {
		t.Fatalf("EntrySize %d", EntrySize([]byte("k"), fill))
	}
	if err := w.Add([]byte("k"), fill, EntryPut); err != nil {
		t.Fatal(err)
	}
	b, err := DecodeBlock(w.Finish(nil), "b", 0)
	if err != nil || b.Size() != MaxBlockSize {
		t.Fatalf("full block: %v", err)
	}
}

func TestBlockWriterFirstLastKey(t *testing.T) {
	w := NewBlockWriter(CodecNone)
	if w.FirstKey() != nil || w.LastKey() != nil {
		t.Fatal("keys of an empty writer")
	}
	for _, k := range []string{"apple", "banana", "cherry"} {
		if err := w.Add([]byte(k), []byte("v"), EntryPut); err != nil {
			t.Fatal(err)
		}
	}
	if string(w.FirstKey()) != "apple" || string(w.LastKey()) != "cherry" {
		t.Fatalf("%q %q", w.FirstKey(), w.LastKey())
	}
	w.Finish(nil)
	if w.FirstKey() != nil || string(w.LastKey()) != "cherry" || w.Len() != 0 || w.Size() != 0 {
		t.Fatalf("after Finish: %q %q %d %d", w.FirstKey(), w.LastKey(), w.Len(), w.Size())
	}
}

// TestBlockFinishAppends checks that Finish appends after existing bytes,
// so a payload can be built straight into a frame.
func TestBlockFinishAppends(t *testing.T) {
	for _, codec := range []BlockCodec{CodecNone, CodecZstd, CodecHuff0} {
		entries := benchEntries(50)
		want := encodeBlock(t, codec, entries)
		w := NewBlockWriter(codec)
		for _, e := range entries {
			w.Add(e.key, e.value, e.kind)
		}
		buf, start := BeginFrame([]byte("header"), FrameBlock)
		buf = w.Finish(buf)
		FinishFrame(buf, start)
		fr := NewFrameReader(bytes.NewReader(buf[6:]), "f", 6, int64(len(buf)), false)
		fm, err := fr.Next()
		off, p := fm.Offset, fm.Payload
		if err != nil || off != 6 || !bytes.Equal(p, want) {
			t.Fatalf("codec %d: %v", codec, err)
		}
	}
}

// blockPayload writes a block payload field by field.
func blockPayload(codec BlockCodec, rawLen, count uint32, body []byte) []byte {
	p := []byte{byte(codec)}
	p = binary.LittleEndian.AppendUint32(p, rawLen)
	p = binary.LittleEndian.AppendUint32(p, count)
	return append(p, body...)
}

// rawEntry encodes one entry without the writer's checks.
func rawEntry(key, value string, kind EntryKind) []byte {
	b := binary.AppendUvarint(nil, uint64(len(key)))
	b = binary.AppendUvarint(b, uint64(len(value)))
	b = append(b, byte(kind))
	return append(append(b, key...), value...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDecodeBlockErrors(t *testing.T) {
	a, b := rawEntry("a", "1", EntryPut), rawEntry("b", "2", EntryPut)
	ab := cat(a, b)
	n := uint32(len(ab))
	zstdAB := zstdEncoder().EncodeAll(ab, nil)
	tests := map[string][]byte{
		"empty payload":            nil,
		"short prefix":             blockPayload(0, 0, 0, nil)[:8],
		"unknown codec":            blockPayload(2, n, 2, ab),
		"codec 255":                blockPayload(255, n, 2, ab),
		"rawLen over MaxBlockSize": blockPayload(0, MaxBlockSize+1, 2, ab),
		"rawLen max uint32":        blockPayload(1, 0xffffffff, 2, zstdAB),
		"count cannot fit":         blockPayload(0, n, n, ab),
		"count max uint32":         blockPayload(0, n, 0xffffffff, ab),
		"rawLen short of body":     blockPayload(0, n-1, 2, ab),
		"rawLen past body":         blockPayload(0, n+1, 2, ab),
		"count too small":          blockPayload(0, n, 1, ab),
		"count too large":          blockPayload(0, n, 3, ab),
		"zero count with bytes":    blockPayload(0, n, 0, ab),
		"keys equal":               blockPayload(0, 2*uint32(len(a)), 2, cat(a, a)),
		"keys descending":          blockPayload(0, n, 2, cat(b, a)),
		"kind 0":                   blockPayload(0, 4, 1, rawEntry("a", "", 0)),
		"kind 3":                   blockPayload(0, 4, 1, rawEntry("a", "", 3)),
		"delete with value":        blockPayload(0, 5, 1, rawEntry("a", "x", EntryDelete)),
		"key past end":             blockPayload(0, 4, 1, []byte{5, 0, 1, 'a'}),
		"value past end":           blockPayload(0, 4, 1, []byte{1, 5, 1, 'a'}),
		"value length huge":        blockPayload(0, 14, 1, cat([]byte{1}, binary.AppendUvarint(nil, 1<<63), []byte{1, 'a'})),
		"varint overflow":          blockPayload(0, 14, 1, cat([]byte{1}, bytes.Repeat([]byte{0xff}, 10), []byte{1, 1, 'a'})),
		"no kind byte":             blockPayload(0, 3, 1, []byte{1, 0, 0}[:2]),
		"zstd garbage":             blockPayload(1, n, 2, []byte("not zstd at all")),
		"zstd truncated":           blockPayload(1, n, 2, zstdAB[:len(zstdAB)-1]),
		"zstd length mismatch":     blockPayload(1, n+1, 2, zstdAB),
		"zstd declares less":       blockPayload(1, n-1, 2, zstdAB),
		"zstd empty body":          blockPayload(1, n, 2, nil),
		"zstd two frames":          blockPayload(1, 2*n, 4, cat(zstdAB, zstdAB)),
	}
	for name, payload := range tests {
		t.Run(name, func(t *testing.T) {
			blk, err := DecodeBlock(payload, "blk", 4242)
			if blk != nil {
				t.Fatal("DecodeBlock returned a block with an error")
			}
			checkDecodeErr(t, err, "blk", 4242, 4243, false, false)
		})
	}
}

// zstdFrame hand-builds a zstd frame of raw blocks. fcs < 0 leaves the
// content size out of the frame header.
func zstdFrame(fcs int64, blocks ...[]byte) []byte {
	f := []byte{0x28, 0xb5, 0x2f, 0xfd}
	if fcs < 0 {
		f = append(f, 0x00, 0x58) // no content size, window 1<<(10+11) = 2 MiB
	} else {
		f = append(f, 0xc0, 0x58) // 8-byte content size, window as above
		f = binary.LittleEndian.AppendUint64(f, uint64(fcs))
	}
	for i, blk := range blocks {
		h := uint32(len(blk)) << 3 // raw block
		if i == len(blocks)-1 {
			h |= 1
		}
		f = append(f, byte(h), byte(h>>8), byte(h>>16))
		f = append(f, blk...)
	}
	return f
}

// TestDecodeBlockZstdBombs feeds zstd frames that claim or produce more
// than the block's declared length and checks that decoding fails without
// allocating much more than the declared length.
func TestDecodeBlockZstdBombs(t *testing.T) {
	entry := rawEntry("k", string(make([]byte, 900)), EntryPut)
	chunk := make([]byte, 100<<10)
	many := make([][]byte, 40) // 4 MB of raw blocks
	for i := range many {
		many[i] = chunk
	}
	tests := map[string][]byte{
		"content size 1 TiB":          blockPayload(1, uint32(len(entry)), 1, zstdFrame(1<<40, entry)),
		"content size over the block": blockPayload(1, uint32(len(entry)), 1, zstdFrame(int64(len(entry))+1, entry, []byte{0})),
		"no content size, overshoot":  blockPayload(1, uint32(len(entry)), 1, zstdFrame(-1, entry, chunk)),
		"many raw blocks":             blockPayload(1, 1000, 1, zstdFrame(-1, many...)),
		"many raw blocks, honest fcs": blockPayload(1, 1000, 1, zstdFrame(int64(len(many)*len(chunk)), many...)),
	}
	for name, payload := range tests {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := DecodeBlock(payload, "bomb", 1)
			runtime.ReadMemStats(&after)
			checkDecodeErr(t, err, "bomb", 1, 2, false, false)
			// The shared decoder's first use allocates its own tables
			// (about a megabyte); nothing may scale with the claims.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 3<<20 {
				t.Fatalf("allocated %d bytes", grew)
			}
		})
	}
	// And the honest hand-built frame decodes.
	if _, err := DecodeBlock(blockPayload(1, uint32(len(entry)), 1, zstdFrame(int64(len(entry)), entry)), "ok", 0); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeBlockReuse decodes different blocks into one Block, including a
// failing one in between.
func TestDecodeBlockReuse(t *testing.T) {
	var b Block
	for i, n := range []int{300, 5, 0, 1000} {
		for _, codec := range []BlockCodec{CodecZstd, CodecNone, CodecHuff0} {
			entries := benchEntries(n)
			if err := b.Decode(encodeBlock(t, codec, entries), "r", 0); err != nil {
				t.Fatal(err)
			}
			if !sameEntries(entriesOf(&b), entries) {
				t.Fatalf("round %d: entries differ", i)
			}
			if err := b.Decode([]byte{9}, "r", 0); err == nil || b.Len() != 0 {
				t.Fatalf("bad decode left %d entries (%v)", b.Len(), err)
			}
		}
	}
}

// TestBlockFrameCorruption damages every byte of a FrameBlock frame: the
// frame checksum catches it before the block is decoded.
func TestBlockFrameCorruption(t *testing.T) {
	for _, codec := range []BlockCodec{CodecNone, CodecZstd, CodecHuff0} {
		frame := AppendFrame(nil, FrameBlock, encodeBlock(t, codec, benchEntries(20)))
		for _, c := range corruptions {
			for i := 1; i < len(frame); i++ {
				d := damage(c, frame, i)
				fr := NewFrameReader(bytes.NewReader(d), "bf", 0, int64(len(d)), false)
				fm, err := fr.Next()
				off, p := fm.Offset, fm.Payload
				if err == nil {
					_, err = DecodeBlock(p, "bf", off)
				}
				checkDecodeErr(t, err, "bf", 0, 1, false, false)
			}
		}
	}
}

// TestBlockPrefixCorruption damages each byte of a block's prefix and the
// lengths and kind of its first entry, without a frame around it: the block
// checks alone catch these.
func TestBlockPrefixCorruption(t *testing.T) {
	for _, codec := range []BlockCodec{CodecNone, CodecZstd, CodecHuff0} {
		payload := encodeBlock(t, codec, benchEntries(200))
		for _, c := range corruptions[:1] { // xor-ff: always out of range here
			for i := 0; i < BlockPrefixSize; i++ {
				_, err := DecodeBlock(damage(c, payload, i), "bp", 77)
				checkDecodeErr(t, err, "bp", 77, 78, false, false)
			}
		}
		for i := 0; i < len(payload); i++ { // truncation
			_, err := DecodeBlock(payload[:i], "bp", 77)
			checkDecodeErr(t, err, "bp", 77, 78, false, false)
		}
	}
}

// TestBlockAnyDamageIsSafe damages every byte of an uncompressed block:
// decoding either fails with corruption or yields valid, sorted entries;
// it never panics.
func TestBlockAnyDamageIsSafe(t *testing.T) {
	payload := encodeBlock(t, CodecNone, randomEntries(rand.New(rand.NewPCG(5, 6)), 30))
	for _, c := range corruptions {
		for i := range payload {
			b, err := DecodeBlock(damage(c, payload, i), "d", 3)
			if err != nil {
				checkDecodeErr(t, err, "d", 3, 4, false, false)
				continue
			}
			checkReencode(t, b)
		}
	}
}

// checkReencode re-encodes a decoded block with both codecs and checks that
// each decodes to the same entries, and that the block's accessors agree.
func checkReencode(t testing.TB, b *Block) {
	t.Helper()
	entries := entriesOf(b)
	for _, codec := range []BlockCodec{CodecNone, CodecZstd, CodecHuff0} {
		w := NewBlockWriter(codec)
		for _, e := range entries {
			if err := w.Add(e.key, e.value, e.kind); err != nil {
				t.Fatalf("re-encoding a decoded block: %v", err)
			}
		}
		b2, err := DecodeBlock(w.Finish(nil), "re", 0)
		if err != nil {
			t.Fatalf("re-encoded block does not decode: %v", err)
		}
		if !sameEntries(entriesOf(b2), entries) {
			t.Fatal("re-encoded block decodes to different entries")
		}
	}
	for i, e := range entries {
		if b.SeekGE(e.key) != i {
			t.Fatalf("SeekGE(entry %d) = %d", i, b.SeekGE(e.key))
		}
	}
}

func TestEntryKindString(t *testing.T) {
	for k, want := range map[EntryKind]string{EntryPut: "put", EntryDelete: "delete", 9: "kind(9)"} {
		if k.String() != want {
			t.Errorf("%d: %q", k, k.String())
		}
	}
}

func TestNewBlockWriterPanicsOnUnknownCodec(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	NewBlockWriter(7)
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }
