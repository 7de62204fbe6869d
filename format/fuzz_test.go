package format

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Fuzz targets for every decoder. Their seed corpora live in
// testdata/fuzz/<FuzzName>/ and run as ordinary tests; generated seeds are
// rewritten by TestFuzzSeeds with -update, crashers found by the fuzzer are
// committed there under their own names. Each target checks: no panic; an
// error is a *CorruptionError inside the input, ErrUnknownVersion or
// io.EOF; whatever decodes is re-encoded and decodes to the same thing.

func FuzzReadHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHeader(bytes.NewReader(data), "fz", "")
		if err != nil {
			checkDecodeErr(t, err, "fz", 0, int64(len(data))+1, true, false)
			return
		}
		// The encoding is canonical: the header re-encodes byte for byte.
		enc := AppendHeader(nil, h.Magic, h.Ext)
		if !bytes.Equal(enc, data[:len(enc)]) {
			t.Fatalf("re-encoded header differs:\n%x\n%x", enc, data[:len(enc)])
		}
		h2, err := ReadHeader(bytes.NewReader(enc), "fz", h.Magic)
		if err != nil || h2.Magic != h.Magic || !bytes.Equal(h2.Ext, h.Ext) {
			t.Fatalf("re-encoded header reads as %+v, %v", h2, err)
		}
	})
}

func FuzzFrameReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, stopAtZero, knownLimit bool) {
		const base = 24 // the frames follow a header
		limit := int64(-1)
		if knownLimit {
			limit = base + int64(len(data))
		}
		fr := NewFrameReader(bytes.NewReader(data), "fz", base, limit, stopAtZero)
		frames, offs, err := readAll(fr)
		checkDecodeErr(t, err, "fz", base, base+int64(len(data))+1, false, true)
		// The frames read re-encode byte for byte, at the offsets reported.
		enc := appendFrames(nil, frames)
		if !bytes.HasPrefix(data, enc) {
			t.Fatalf("re-encoded frames are not a prefix of the input")
		}
		for i, off := range offs {
			if i == 0 && off != base || i > 0 && off != offs[i-1]+FrameHeaderSize+int64(len(frames[i-1].payload)) {
				t.Fatalf("frame %d at offset %d", i, off)
			}
		}
		again, _, err := readAll(NewFrameReader(bytes.NewReader(enc), "fz", base, base+int64(len(enc)), false))
		if err != io.EOF || !sameFrames(again, frames) {
			t.Fatalf("re-encoded frames read back as %d frames, %v", len(again), err)
		}
	})
}

func FuzzDecodeBlock(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		const off = 1 << 40 // an offset no length in the payload could produce
		b, err := DecodeBlock(payload, "fz", off)
		if err != nil {
			checkDecodeErr(t, err, "fz", off, off+1, false, false)
			return
		}
		if b.Size() > MaxBlockSize {
			t.Fatalf("decoded %d bytes", b.Size())
		}
		checkReencode(t, b)
		for i := 1; i < b.Len(); i++ {
			if bytes.Compare(b.Key(i-1), b.Key(i)) >= 0 {
				t.Fatalf("keys %d and %d out of order", i-1, i)
			}
		}
	})
}

// TestFuzzSeeds writes the generated seed corpora with -update. Without it,
// it checks that each target has seeds.
func TestFuzzSeeds(t *testing.T) {
	corpora := map[string][][]any{
		"FuzzReadHeader":  headerSeeds(),
		"FuzzFrameReader": frameSeeds(),
		"FuzzDecodeBlock": blockSeeds(t),
	}
	for name, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", name)
		if !*update {
			if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
				t.Errorf("%s has no seed corpus (%v); run with -update", name, err)
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, args := range seeds {
			path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			if err := os.WriteFile(path, corpusFile(args...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// corpusFile encodes fuzz arguments in the "go test fuzz v1" format.
func corpusFile(args ...any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case bool:
			fmt.Fprintf(&b, "bool(%v)\n", v)
		default:
			panic(fmt.Sprintf("corpusFile: %T", a))
		}
	}
	return b.Bytes()
}

func headerSeeds() [][]any {
	good := AppendHeader(nil, MagicSegment, []byte("ext"))
	newer := rawHeader(MagicDelta, 2, 0, 0, nil)
	return [][]any{
		{AppendHeader(nil, MagicCheckpoint, nil)},
		{good},
		{append(bytes.Clone(good), "trailing frames"...)},
		{newer},
		{rawHeader(MagicManifest, 1, 1, 0, nil)},
		{rawHeader(MagicTransfer, 1, 0, MaxHeaderExt+1, nil)},
		{good[:20]},
		{damage(corruptions[0], good, 17)},
		{[]byte("KVT-QRN\x00")},
	}
}

func frameSeeds() [][]any {
	frames := appendFrames(nil, fixtureFrames())
	block := AppendFrame(nil, FrameBlock, []byte{0, 4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 'a'})
	return [][]any{
		{frames, false, true},
		{frames, false, false},
		{append(bytes.Clone(frames), make([]byte, 40)...), true, true},
		{append(bytes.Clone(frames), make([]byte, 5)...), true, false},
		{frames[:len(frames)-3], false, true},
		{damage(corruptions[0], frames, 9), false, false},
		{block, false, true},
		{frameHeaderBytes(MaxFrameSize, FrameXferChunk, [3]byte{}), false, false},
		{[]byte{}, false, true},
	}
}

func blockSeeds(t *testing.T) [][]any {
	none := encodeBlock(t, CodecNone, fixtureEntries())
	zstd := encodeBlock(t, CodecZstd, benchEntries(60))
	huff := encodeBlock(t, CodecHuff0, benchEntries(60))
	entry := rawEntry("k", "value", EntryPut)
	return [][]any{
		{none},
		{zstd},
		{encodeBlock(t, CodecNone, nil)},
		{encodeBlock(t, CodecNone, randomEntries(newRand(7), 20))},
		{damage(corruptions[0], none, 12)},
		{damage(corruptions[0], zstd, 20)},
		{zstd[:len(zstd)-2]},
		{blockPayload(1, uint32(len(entry)), 1, zstdFrame(int64(len(entry)), entry))},
		{blockPayload(1, uint32(len(entry)), 1, zstdFrame(-1, entry, make([]byte, 2000)))},
		{blockPayload(1, uint32(len(entry)), 1, zstdFrame(1<<40, entry))},
		{blockPayload(0, 14, 1, cat([]byte{1}, bytes.Repeat([]byte{0xff}, 10), []byte{1, 1, 'a'}))},
		{huff},
		{damage(corruptions[0], huff, 30)},
		{huff[:len(huff)-3]},
		{blockPayload(CodecHuff0, binary.LittleEndian.Uint32(huff[1:])+1, binary.LittleEndian.Uint32(huff[5:]), huff[BlockPrefixSize:])},
		{blockPayload(CodecHuff0, Huff0MaxBlock+1, 1, huff[BlockPrefixSize:])},
	}
}

// FuzzDecodeXferHello: a hello (with or without the sender's API
// extension) and a source record never panic; damage is a
// *CorruptionError at an offset inside the frame (off is the frame's, the
// payload follows its header); whatever decodes re-encodes to a hello that decodes
// alike.
func FuzzDecodeXferHello(f *testing.F) {
	var nonce [XferNonceSize]byte
	f.Add(AppendXferHello(nil, ReceiverHello(2, nonce, 1)))
	f.Add(AppendXferHello(nil, XferHello{Version: 2, Role: XferSender, API: "127.0.0.1:7070"}))
	f.Add(AppendXferSource(nil, "127.0.0.1:7070"))
	f.Fuzz(func(t *testing.T, p []byte) {
		if api, err := DecodeXferSource(p, "f", 100); err != nil {
			checkDecodeErr(t, err, "f", 100, 100+FrameHeaderSize+int64(len(p))+1, false, false)
		} else if len(api) > len(p) {
			t.Fatalf("source record of %d bytes named %d bytes", len(p), len(api))
		}
		h, err := DecodeXferHello(p, "f", 100)
		if err != nil {
			checkDecodeErr(t, err, "f", 100, 100+FrameHeaderSize+int64(len(p))+1, false, false)
			return
		}
		h2, err := DecodeXferHello(AppendXferHello(nil, h), "f", 100)
		if err != nil || h2 != h {
			t.Fatalf("re-encoded hello %+v decodes to %+v, %v", h, h2, err)
		}
	})
}
