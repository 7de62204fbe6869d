package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/cespare/xxhash/v2"
)

type testFrame struct {
	typ     FrameType
	payload []byte
}

func appendFrames(dst []byte, frames []testFrame) []byte {
	for _, f := range frames {
		dst = AppendFrame(dst, f.typ, f.payload)
	}
	return dst
}

// readAll reads frames until an error and returns them with the error.
func readAll(fr *FrameReader) ([]testFrame, []int64, error) {
	var frames []testFrame
	var offs []int64
	for {
		fm, err := fr.Next()
		h, off, p := fm.FrameHeader, fm.Offset, fm.Payload
		if err != nil {
			return frames, offs, err
		}
		frames = append(frames, testFrame{h.Type, bytes.Clone(p)})
		offs = append(offs, off)
	}
}

func sameFrames(a, b []testFrame) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].typ != b[i].typ || !bytes.Equal(a[i].payload, b[i].payload) {
			return false
		}
	}
	return true
}

var sampleFrames = []testFrame{
	{FrameWALTxn, []byte("hello")},
	{FrameWALNoop, nil},
	{FrameBlock, bytes.Repeat([]byte("0123456789"), 1000)},
	{FrameFooter, []byte{0}},
}

func TestFrameRoundTrip(t *testing.T) {
	const base = 100 // frames start after a 100-byte "header"
	data := appendFrames(make([]byte, base), sampleFrames)
	for _, limit := range []int64{int64(len(data)), -1} {
		for _, r := range []io.Reader{bytes.NewReader(data[base:]), iotest.OneByteReader(bytes.NewReader(data[base:]))} {
			fr := NewFrameReader(r, "f", base, limit, false)
			got, offs, err := readAll(fr)
			if err != io.EOF {
				t.Fatalf("limit %d: %v", limit, err)
			}
			if !sameFrames(got, sampleFrames) {
				t.Fatalf("limit %d: frames differ", limit)
			}
			want := int64(base)
			for i, f := range sampleFrames {
				if offs[i] != want {
					t.Fatalf("frame %d at %d, want %d", i, offs[i], want)
				}
				want += int64(FrameHeaderSize + len(f.payload))
			}
			if fr.Offset() != int64(len(data)) {
				t.Fatalf("Offset %d at the end, want %d", fr.Offset(), len(data))
			}
			if _, err := fr.Next(); err != io.EOF {
				t.Fatalf("EOF not sticky: %v", err)
			}
		}
	}
}

func TestBeginFinishFrameMatchesAppendFrame(t *testing.T) {
	b, start := BeginFrame([]byte("xyz"), FrameManifest)
	b = append(b, "payload"...)
	FinishFrame(b, start)
	if want := AppendFrame([]byte("xyz"), FrameManifest, []byte("payload")); !bytes.Equal(b, want) {
		t.Fatalf("BeginFrame/FinishFrame\n%x\nAppendFrame\n%x", b, want)
	}
}

func TestFrameEmptyPayload(t *testing.T) {
	data := AppendFrame(nil, FrameWALNoop, nil)
	if len(data) != FrameHeaderSize {
		t.Fatalf("empty frame is %d bytes", len(data))
	}
	if IsZeroHeader(data) {
		t.Fatal("an empty frame looks like a zero header")
	}
	fr := NewFrameReader(bytes.NewReader(data), "f", 0, int64(len(data)), true)
	fm, err := fr.Next()
	h, p := fm.FrameHeader, fm.Payload
	if err != nil || h.Type != FrameWALNoop || len(p) != 0 {
		t.Fatalf("got %+v %q %v", h, p, err)
	}
}

func frameHeaderBytes(length uint32, typ FrameType, reserved [3]byte) []byte {
	b := make([]byte, FrameHeaderSize)
	binary.LittleEndian.PutUint32(b[8:], length)
	b[12] = byte(typ)
	copy(b[13:], reserved[:])
	return b
}

func TestParseFrameHeader(t *testing.T) {
	tests := []struct {
		name      string
		hdr       []byte
		remaining int64
		ok        bool
	}{
		{"max length", frameHeaderBytes(MaxFrameSize, FrameBlock, [3]byte{}), -1, true},
		{"max length, exactly remaining", frameHeaderBytes(MaxFrameSize, FrameBlock, [3]byte{}), MaxFrameSize, true},
		{"past max length", frameHeaderBytes(MaxFrameSize+1, FrameBlock, [3]byte{}), -1, false},
		{"max uint32", frameHeaderBytes(0xffffffff, FrameBlock, [3]byte{}), -1, false},
		{"past remaining", frameHeaderBytes(10, FrameBlock, [3]byte{}), 9, false},
		{"type 0", frameHeaderBytes(0, 0, [3]byte{}), -1, false},
		{"reserved 13", frameHeaderBytes(0, FrameBlock, [3]byte{1, 0, 0}), -1, false},
		{"reserved 14", frameHeaderBytes(0, FrameBlock, [3]byte{0, 1, 0}), -1, false},
		{"reserved 15", frameHeaderBytes(0, FrameBlock, [3]byte{0, 0, 0x80}), -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseFrameHeader(tt.hdr, "p", 42, tt.remaining)
			if tt.ok {
				if err != nil || h.Length != binary.LittleEndian.Uint32(tt.hdr[8:]) {
					t.Fatalf("%+v %v", h, err)
				}
				return
			}
			checkDecodeErr(t, err, "p", 42, 43, false, false)
		})
	}
}

// TestFrameMaxSize writes and reads a frame of exactly MaxFrameSize and
// checks that one byte more is refused by the writer.
func TestFrameMaxSize(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 64 MiB")
	}
	buf := make([]byte, FrameHeaderSize+MaxFrameSize, FrameHeaderSize+MaxFrameSize+1)
	buf[FrameHeaderSize+12345] = 7
	buf[12] = byte(FrameBlock)
	FinishFrame(buf, 0)
	fr := NewFrameReader(bytes.NewReader(buf), "f", 0, int64(len(buf)), false)
	fm, err := fr.Next()
	h, p := fm.FrameHeader, fm.Payload
	if err != nil || h.Length != MaxFrameSize || p[12345] != 7 {
		t.Fatalf("%+v %v", h, err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("FinishFrame accepted MaxFrameSize+1 bytes")
		}
	}()
	FinishFrame(append(buf, 0), 0)
}

func TestFrameReaderZeroHeader(t *testing.T) {
	frames := appendFrames(nil, sampleFrames[:2])
	n := int64(len(frames))
	tests := []struct {
		name       string
		tail       []byte
		limit      bool
		stopAtZero bool
		wantEOF    bool // else corruption at n
	}{
		{"zero header ends a preallocated file", make([]byte, 4096), true, true, true},
		{"zero header, unknown limit", make([]byte, 4096), false, true, true},
		{"short zero tail", make([]byte, 5), true, true, true},
		{"short zero tail, unknown limit", make([]byte, 5), false, true, true},
		{"zero header without stopAtZero", make([]byte, 4096), true, false, false},
		{"short zero tail without stopAtZero", make([]byte, 5), true, false, false},
		{"short non-zero tail", []byte{0, 0, 1}, true, true, false},
		{"short non-zero tail, unknown limit", []byte{0, 0, 1}, false, true, false},
		{"non-zero byte in the zero header", append(make([]byte, 15), 1), true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := append(bytes.Clone(frames), tt.tail...)
			limit := int64(-1)
			if tt.limit {
				limit = int64(len(data))
			}
			got, _, err := readAll(NewFrameReader(bytes.NewReader(data), "z", 0, limit, tt.stopAtZero))
			if !sameFrames(got, sampleFrames[:2]) {
				t.Fatalf("read %d frames", len(got))
			}
			if tt.wantEOF {
				if err != io.EOF {
					t.Fatalf("want EOF, got %v", err)
				}
				return
			}
			checkDecodeErr(t, err, "z", n, n+1, false, false)
		})
	}
}

// TestFrameReaderStopsAtLimit checks that a reader never reads past limit,
// even when the underlying reader holds more bytes.
func TestFrameReaderStopsAtLimit(t *testing.T) {
	data := appendFrames(nil, sampleFrames)
	first := FrameHeaderSize + len(sampleFrames[0].payload)
	for _, limit := range []int{first, first + 1, first + FrameHeaderSize - 1} {
		r := bytes.NewReader(data)
		got, _, err := readAll(NewFrameReader(r, "l", 0, int64(limit), false))
		if len(got) != 1 || (limit == first) != (err == io.EOF) {
			t.Fatalf("limit %d: %d frames, %v", limit, len(got), err)
		}
		if read := len(data) - r.Len(); read > limit {
			t.Fatalf("limit %d: read %d bytes", limit, read)
		}
		if limit != first {
			checkDecodeErr(t, err, "l", int64(first), int64(first)+1, false, false)
		}
	}
}

func TestFrameReaderLengthPastEnd(t *testing.T) {
	data := AppendFrame(nil, FrameWALTxn, []byte("payload"))
	binary.LittleEndian.PutUint32(data[8:], 8) // one byte more than there is
	binary.LittleEndian.PutUint64(data, xxhash.Sum64(data[8:]))
	_, _, err := readAll(NewFrameReader(bytes.NewReader(data), "p", 0, int64(len(data)), false))
	checkDecodeErr(t, err, "p", 0, 1, false, false)
	// With an unknown limit the payload read falls short.
	_, _, err = readAll(NewFrameReader(bytes.NewReader(data), "p", 0, -1, false))
	checkDecodeErr(t, err, "p", 0, 1, false, false)
}

// TestFrameReaderBoundedAllocation checks that a damaged length on a stream
// of unknown size allocates about what the stream holds, not the length.
func TestFrameReaderBoundedAllocation(t *testing.T) {
	hdr := frameHeaderBytes(MaxFrameSize, FrameXferChunk, [3]byte{})
	data := append(hdr, make([]byte, 1000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := readAll(NewFrameReader(bytes.NewReader(data), "", 0, -1, false))
	runtime.ReadMemStats(&after)
	checkDecodeErr(t, err, "", 0, 1, false, false)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4*streamStep {
		t.Fatalf("allocated %d bytes for a 1016-byte stream", grew)
	}
}

func TestFrameReaderStickyError(t *testing.T) {
	data := appendFrames(nil, sampleFrames)
	data[FrameHeaderSize] ^= 1 // first payload byte
	fr := NewFrameReader(bytes.NewReader(data), "s", 0, int64(len(data)), false)
	_, err1 := fr.Next()
	_, err2 := fr.Next()
	if err1 == nil || err1 != err2 {
		t.Fatalf("errors %v then %v", err1, err2)
	}
	checkDecodeErr(t, err1, "s", 0, 1, false, false)
}

func TestFrameReaderPassesIOErrors(t *testing.T) {
	boom := errors.New("boom")
	data := appendFrames(nil, sampleFrames)
	for _, n := range []int{0, 3, FrameHeaderSize + 2} {
		_, _, err := readAll(NewFrameReader(&errReader{bytes.NewReader(data), n, boom}, "p", 0, -1, false))
		if !errors.Is(err, boom) || errors.Is(err, ErrCorruption) {
			t.Fatalf("after %d bytes: want the I/O error, got %v", n, err)
		}
	}
}

// TestFrameCorruption damages every byte of a stream of frames in turn and
// checks that the reader reports corruption at the start of the damaged
// frame, after returning the intact frames before it unchanged.
func TestFrameCorruption(t *testing.T) {
	frames := sampleFrames[:2]
	frames = append(frames, testFrame{FrameWALTxn, []byte("third")})
	data := appendFrames(nil, frames)
	starts := []int{0}
	for _, f := range frames {
		starts = append(starts, starts[len(starts)-1]+FrameHeaderSize+len(f.payload))
	}
	frameAt := func(i int) int { // index of the frame holding byte i
		for k := range frames {
			if i < starts[k+1] {
				return k
			}
		}
		return len(frames)
	}
	for _, c := range corruptions {
		for i := range data {
			k := frameAt(i)
			if c.name == "truncate" && i == starts[k] {
				continue // a cut between frames is a clean end here; segments check continuity
			}
			for _, limit := range []bool{true, false} {
				d := damage(c, data, i)
				lim := int64(-1)
				if limit {
					lim = int64(len(d))
				}
				got, _, err := readAll(NewFrameReader(bytes.NewReader(d), "c", 0, lim, false))
				if !sameFrames(got, frames[:k]) {
					t.Fatalf("%s at %d: read %d intact frames, want %d", c.name, i, len(got), k)
				}
				checkDecodeErr(t, err, "c", int64(starts[k]), int64(starts[k])+1, false, false)
			}
		}
	}
}
