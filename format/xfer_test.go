package format

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// xferSamples returns one valid payload of every transfer frame type, the
// frames of the byte-exact fixture xfer-v1.bin.
func xferSamples() []testFrame {
	id := XferSnapshotID{Index: 1000, Term: 1, Checksum: 0x0123456789abcdef}
	store := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	return []testFrame{
		{FrameXferHello, AppendXferHello(nil, XferHello{Version: XferProtocol, Role: XferSender, Nonce: [32]byte{1}, Proof: [32]byte{2}})},
		{FrameXferRequest, AppendXferRequest(nil, XferRequest{Proof: [32]byte{3}, Flags: XferHavePartial | XferFollow,
			ChunkSize: 1 << 20, StoreID: store, Epoch: 1, Term: 1, Snapshot: id, FirstMissing: 7, WALLast: 1020, Window: 8 << 20})},
		{FrameXferSession, AppendXferSession(nil, XferSession{Version: XferProtocol, Flags: XferRestarted, ChunkSize: 1 << 20,
			StoreID: store, Epoch: 1, Term: 1, Snapshot: id, TotalSize: 5<<20 + 3, ChunkCount: 6, ResumeFrom: 2,
			TailFrom: 1001, SegmentSize: 64 << 20})},
		{FrameXferChunk, AppendXferChunk(nil, XferChunk{Seq: 2, Offset: 2 << 20, RawLen: 1 << 20, WireLen: 1 << 20, Sum: 42})},
		{FrameXferTail, AppendXferTail(nil, XferTail{Index: 1001, Term: 1, Type: FrameWALTxn, Data: []byte("txn")})},
		{FrameXferFinal, AppendXferFinal(nil, XferFinal{FileSum: 9, SnapIndex: 1000, TotalSize: 5<<20 + 3, ChunkCount: 6, TailEnd: 1500})},
		{FrameXferCredit, AppendXferCredit(nil, XferCredit{FirstMissing: 4, Limit: 12, WALLast: 1200, Applied: 0})},
		{FrameXferNack, AppendXferNack(nil, XferNack{Seq: 3, Reason: XferNackChecksum})},
		{FrameXferDone, AppendXferDone(nil, XferDone{Applied: 1500})},
		{FrameXferError, AppendXferError(nil, XferError{Code: XferErrStoreMismatch, Message: "another store"})},
	}
}

// decodeXfer decodes a payload of type t as the transfer package does and
// re-encodes what it decoded.
func decodeXfer(t FrameType, p []byte, path string, off int64) (any, []byte, error) {
	switch t {
	case FrameXferHello:
		v, err := DecodeXferHello(p, path, off)
		return v, AppendXferHello(nil, v), err
	case FrameXferRequest:
		v, err := DecodeXferRequest(p, path, off)
		return v, AppendXferRequest(nil, v), err
	case FrameXferSession:
		v, err := DecodeXferSession(p, path, off)
		return v, AppendXferSession(nil, v), err
	case FrameXferChunk:
		v, err := DecodeXferChunk(p, path, off)
		return v, AppendXferChunk(nil, v), err
	case FrameXferTail:
		v, err := DecodeXferTail(p, path, off)
		return v, AppendXferTail(nil, v), err
	case FrameXferFinal:
		v, err := DecodeXferFinal(p, path, off)
		return v, AppendXferFinal(nil, v), err
	case FrameXferCredit:
		v, err := DecodeXferCredit(p, path, off)
		return v, AppendXferCredit(nil, v), err
	case FrameXferNack:
		v, err := DecodeXferNack(p, path, off)
		return v, AppendXferNack(nil, v), err
	case FrameXferDone:
		v, err := DecodeXferDone(p, path, off)
		return v, AppendXferDone(nil, v), err
	case FrameXferError:
		v, err := DecodeXferError(p, path, off)
		return v, AppendXferError(nil, v), err
	}
	return nil, nil, fmt.Errorf("type %d is not a transfer frame", t)
}

func TestXferRoundTrip(t *testing.T) {
	for _, f := range xferSamples() {
		lo, hi, ok := XferPayloadLimits(f.typ)
		if !ok || len(f.payload) < lo || len(f.payload) > hi {
			t.Errorf("type %d: payload of %d bytes outside its limits [%d, %d] (%v)", f.typ, len(f.payload), lo, hi, ok)
		}
		v, enc, err := decodeXfer(f.typ, f.payload, "rt", 0)
		if err != nil || !bytes.Equal(enc, f.payload) {
			t.Errorf("type %d: decoded %+v, %v; re-encoded %x, want %x", f.typ, v, err, enc, f.payload)
		}
	}
}

func TestFixtureXfer(t *testing.T) {
	stream := AppendXferStreamHeader(nil, XferStreamExt{Role: XferSender, Mode: XferDuplex})
	stream = appendFrames(stream, xferSamples())
	want := checkFixture(t, "xfer-v1.bin", stream, true)
	h, err := ReadHeader(bytes.NewReader(want), "xfer-v1.bin", MagicTransfer)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := ParseXferStreamExt(h.Ext, "xfer-v1.bin"); err != nil || e.Role != XferSender || e.Mode != XferDuplex {
		t.Fatalf("%+v %v", e, err)
	}
	off := int64(XferStreamHeaderSize)
	frames, _, err := readAll(NewFrameReader(bytes.NewReader(want[off:]), "xfer-v1.bin", off, int64(len(want)), false))
	if err != io.EOF || !sameFrames(frames, xferSamples()) {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
}

// TestXferDecodeCorrupt damages every byte of every sample: a decoder
// either rejects the payload with a *CorruptionError inside the frame, or
// decodes something that re-encodes to the damaged bytes (no field is
// silently ignored).
func TestXferDecodeCorrupt(t *testing.T) {
	const off = 1000
	for _, f := range xferSamples() {
		for _, c := range corruptions {
			for i := 0; i < len(f.payload); i++ {
				p := damage(c, f.payload, i)
				_, enc, err := decodeXfer(f.typ, p, "dmg", off)
				if err != nil {
					checkDecodeErr(t, err, "dmg", off, off+FrameHeaderSize+int64(len(p))+1, false, false)
					continue
				}
				if !bytes.Equal(enc, p) {
					t.Fatalf("type %d, %s at %d: decoded but re-encodes differently", f.typ, c.name, i)
				}
			}
		}
	}
}

func TestXferSessionChecks(t *testing.T) {
	base := XferSession{Version: XferProtocol, ChunkSize: MinXferChunk, TotalSize: 3 * MinXferChunk, ChunkCount: 3, TailFrom: 1}
	cases := map[string]func(s *XferSession){
		"chunk size too small":  func(s *XferSession) { s.ChunkSize = MinXferChunk - 1 },
		"chunk size too large":  func(s *XferSession) { s.ChunkSize = MaxXferChunk + 1 },
		"chunk count":           func(s *XferSession) { s.ChunkCount = 4 },
		"resume past end":       func(s *XferSession) { s.ResumeFrom = 4 },
		"tail before snapshot":  func(s *XferSession) { s.Snapshot.Index, s.TailFrom = 10, 10 },
		"tail-only with chunks": func(s *XferSession) { s.Flags = XferTailOnly },
		"unknown flag":          func(s *XferSession) { s.Flags = 1 << 7 },
		"huge snapshot": func(s *XferSession) {
			s.TotalSize, s.ChunkCount = MaxXferSnapshot+1, XferChunkCount(MaxXferSnapshot+1, MinXferChunk)
		},
	}
	if _, err := DecodeXferSession(AppendXferSession(nil, base), "s", 0); err != nil {
		t.Fatalf("base: %v", err)
	}
	for name, mod := range cases {
		s := base
		mod(&s)
		if _, err := DecodeXferSession(AppendXferSession(nil, s), "s", 0); AsCorruption(err) == nil {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
}

func TestXferSessionDirName(t *testing.T) {
	id := XferSnapshotID{Index: 1 << 40, Term: 3, Checksum: ^uint64(0)}
	got, ok := ParseXferSessionDir(id.String())
	if !ok || got != id {
		t.Fatalf("%s parsed as %+v %v", id, got, ok)
	}
	for _, bad := range []string{"", XferSendDir, "0-0-0", id.String() + "-", "000000000000000g-0000000000000000-0000000000000000"} {
		if _, ok := ParseXferSessionDir(bad); ok {
			t.Errorf("%q parsed as a session directory", bad)
		}
	}
}

func TestXferChunkCompression(t *testing.T) {
	raw := bytes.Repeat([]byte("compressible "), 1000)
	wire, codec := CompressXferChunk([]byte("prefix"), raw)
	if codec != CodecZstd || !bytes.HasPrefix(wire, []byte("prefix")) {
		t.Fatalf("codec %d", codec)
	}
	out, err := DecompressXferChunk(nil, wire[6:], len(raw))
	if err != nil || !bytes.Equal(out, raw) {
		t.Fatalf("%v", err)
	}
	if _, err := DecompressXferChunk(nil, wire[6:], len(raw)-1); err == nil {
		t.Fatal("decoded past the announced length")
	}
	random := newRand(1)
	noise := make([]byte, 4096)
	for i := range noise {
		noise[i] = byte(random.Uint32())
	}
	if wire, codec := CompressXferChunk(nil, noise); codec != CodecNone || !bytes.Equal(wire, noise) {
		t.Fatalf("incompressible chunk sent with codec %d", codec)
	}
}

// FuzzXferPayload decodes arbitrary payloads as every transfer frame type:
// no panic, errors are corruption inside the frame, and whatever decodes
// re-encodes byte for byte.
func FuzzXferPayload(f *testing.F) {
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		const off = 1 << 30
		if _, _, ok := XferPayloadLimits(FrameType(typ)); !ok {
			return
		}
		v, enc, err := decodeXfer(FrameType(typ), payload, "fz", off)
		if err != nil {
			checkDecodeErr(t, err, "fz", off, off+FrameHeaderSize+int64(len(payload))+1, false, false)
			return
		}
		if !bytes.Equal(enc, payload) {
			t.Fatalf("type %d: %+v re-encodes as %x, input %x", typ, v, enc, payload)
		}
		v2, _, err := decodeXfer(FrameType(typ), enc, "fz", off)
		if err != nil || !reflect.DeepEqual(v, v2) {
			t.Fatalf("re-encoded payload decodes as %+v, %v", v2, err)
		}
	})
}

// TestXferFuzzSeeds writes FuzzXferPayload's seeds with -update, or checks
// that they exist.
func TestXferFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzXferPayload")
	if !*update {
		if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
			t.Errorf("FuzzXferPayload has no seed corpus (%v); run with -update", err)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var seeds [][]any
	for _, f := range xferSamples() {
		seeds = append(seeds, []any{[]byte{byte(f.typ)}, f.payload})
		seeds = append(seeds, []any{[]byte{byte(f.typ)}, damage(corruptions[0], f.payload, len(f.payload)/2)})
	}
	for i, args := range seeds {
		path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
		if err := os.WriteFile(path, xferCorpusFile(args[0].([]byte)[0], args[1].([]byte)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// xferCorpusFile encodes (byte, []byte) fuzz arguments.
func xferCorpusFile(typ byte, payload []byte) []byte {
	b := corpusFile(payload)
	return bytes.Replace(b, []byte("go test fuzz v1\n"), fmt.Appendf(nil, "go test fuzz v1\nbyte(%q)\n", typ), 1)
}
