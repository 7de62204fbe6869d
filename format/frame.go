package format

import (
	"encoding/binary"
	"io"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// FrameType says what a frame's payload is. The values are part of the
// on-disk format and never change; 0 is never valid, so a zeroed region is
// never mistaken for a frame.
type FrameType uint8

// Frame types of WAL segments: entries (each carries a log index).
const (
	FrameWALTxn  FrameType = 1 // a store transaction (payload: index, term, encoded ops)
	FrameWALNoop FrameType = 2 // an empty entry (payload: index, term)
	FrameWALConf FrameType = 3 // a cluster configuration change (later)
)

// Frame types of WAL segments: markers, which are not log entries and take
// no index. Each payload is one little-endian u64.
const (
	// FrameWALSeal is the last frame of a sealed segment; its payload is
	// the first index of the next segment, which must exist.
	FrameWALSeal FrameType = 4
	// FrameWALClose is written by a clean shutdown; its payload is the
	// index of the last entry before it.
	FrameWALClose FrameType = 5
	// FrameWALSegInfo is the first frame of a segment; its payload is the
	// size the segment was preallocated to.
	FrameWALSegInfo FrameType = 6
)

// Frame types of block files (checkpoints and deltas).
const (
	FrameBlock  FrameType = 16 // zstd-compressed sorted entries
	FrameIndex  FrameType = 17 // first key and offset of every block
	FrameFooter FrameType = 18 // counts, applied index, state hash, file checksum
)

// Frame types of the manifest and of quarantine files.
const (
	FrameManifest   FrameType = 24 // the manifest's single body
	FrameQuarantine FrameType = 25 // bytes cut by a repair, with their origin
)

// Frame types of transfer streams.
const (
	FrameXferSession FrameType = 32 // session header
	FrameXferChunk   FrameType = 33 // one snapshot chunk
	FrameXferTail    FrameType = 34 // WAL records after the snapshot index
	FrameXferFinal   FrameType = 35 // whole-snapshot checksum
	FrameXferCredit  FrameType = 36 // receiver-granted credit / resume point
)

const (
	// FrameHeaderSize is the size of a frame header.
	FrameHeaderSize = 16
	// MaxFrameSize bounds a frame payload; a larger length read from disk is
	// corruption, so a damaged length can never make a reader allocate more.
	MaxFrameSize = 64 << 20
)

// FrameHeader is a decoded frame header.
type FrameHeader struct {
	Checksum uint64
	Length   uint32
	Type     FrameType
}

// BeginFrame appends a placeholder frame header of type t to dst and returns
// the extended slice and the frame's start offset in it. Append the payload
// to the returned slice, then call FinishFrame. This lets writers build a
// payload in place without a copy.
func BeginFrame(dst []byte, t FrameType) ([]byte, int) {
	start := len(dst)
	var h [FrameHeaderSize]byte
	h[12] = byte(t)
	return append(dst, h[:]...), start
}

// FinishFrame fills in the length and checksum of the frame that starts at
// start in b and runs to the end of b.
func FinishFrame(b []byte, start int) {
	n := len(b) - start - FrameHeaderSize
	if n > MaxFrameSize {
		panic("kvtool/format: frame payload exceeds MaxFrameSize") // callers bound their payloads
	}
	binary.LittleEndian.PutUint32(b[start+8:], uint32(n))
	binary.LittleEndian.PutUint64(b[start:], xxhash.Sum64(b[start+8:]))
}

// AppendFrame appends a whole frame of type t with the given payload to dst.
func AppendFrame(dst []byte, t FrameType, payload []byte) []byte {
	dst, start := BeginFrame(dst, t)
	dst = append(dst, payload...)
	FinishFrame(dst, start)
	return dst
}

// IsZeroHeader reports whether b (at least FrameHeaderSize bytes) is an
// all-zero frame header: the end of written data in a preallocated file.
func IsZeroHeader(b []byte) bool { return allZero(b[:FrameHeaderSize]) }

// ParseFrameHeader decodes the frame header at the start of b, which is at
// offset off of path, and checks what can be checked without the payload:
// a valid type, zero reserved bytes, and a length within MaxFrameSize and
// within the remaining bytes of the file (remaining counts from the end of
// the header; pass -1 if unknown).
func ParseFrameHeader(b []byte, path string, off, remaining int64) (FrameHeader, error) {
	h := FrameHeader{
		Checksum: binary.LittleEndian.Uint64(b),
		Length:   binary.LittleEndian.Uint32(b[8:]),
		Type:     FrameType(b[12]),
	}
	switch {
	case h.Type == 0:
		return h, Corruptf(path, off, "invalid frame type 0")
	case b[13]|b[14]|b[15] != 0:
		return h, Corruptf(path, off, "reserved frame bytes are not zero")
	case h.Length > MaxFrameSize:
		return h, Corruptf(path, off, "frame length %d exceeds limit %d", h.Length, MaxFrameSize)
	case remaining >= 0 && int64(h.Length) > remaining:
		return h, Corruptf(path, off, "frame length %d runs past the end of the data (%d bytes left)", h.Length, remaining)
	}
	return h, nil
}

// VerifyFrame checks the checksum of a frame whose header bytes are hdr and
// whose payload is payload.
func VerifyFrame(hdr []byte, payload []byte) bool {
	d := xxhash.New()
	d.Write(hdr[8:FrameHeaderSize])
	d.Write(payload)
	return d.Sum64() == binary.LittleEndian.Uint64(hdr)
}

// FrameReader reads frames one after another from a byte stream. Its errors
// are sticky: once Next returns an error it returns that error again.
type FrameReader struct {
	r      io.Reader
	path   string
	off    int64 // offset in the file of the next byte r returns
	limit  int64 // offset of the end of the data, or -1 if unknown
	hdr    [FrameHeaderSize]byte
	buf    []byte
	err    error // sticky
	zeroOK bool
}

// NewFrameReader reads frames from r, whose first byte is at offset off of
// path; limit is the offset where the data ends (-1 if unknown). If
// stopAtZero is set, an all-zero frame header ends the stream like io.EOF
// (a preallocated file).
func NewFrameReader(r io.Reader, path string, off, limit int64, stopAtZero bool) *FrameReader {
	return &FrameReader{r: r, path: path, off: off, limit: limit, zeroOK: stopAtZero}
}

// Offset returns the offset of the next frame: after a successful Next, the
// end of the frame returned; after an error, the start of the frame that
// failed.
func (fr *FrameReader) Offset() int64 { return fr.off }

// Frame is one frame a FrameReader read.
type Frame struct {
	FrameHeader
	Offset  int64  // offset of the frame header in the file
	Payload []byte // valid until the following call to Next
}

// Next returns the next frame. It returns io.EOF at a clean end: exactly at
// limit, at the end of r, or (with stopAtZero) at a zeroed header. Damage
// is a *CorruptionError naming the offset of the frame; after any error,
// Offset still returns where the frame that failed starts.
func (fr *FrameReader) Next() (Frame, error) {
	if fr.err != nil {
		return Frame{}, fr.err
	}
	f, err := fr.next()
	if err != nil {
		fr.err = err
	}
	return f, err
}

func (fr *FrameReader) next() (Frame, error) {
	start := fr.off
	if err := fr.readHeader(start); err != nil {
		return Frame{}, err
	}
	remaining := int64(-1)
	if fr.limit >= 0 {
		remaining = fr.limit - start - FrameHeaderSize
	}
	h, err := ParseFrameHeader(fr.hdr[:], fr.path, start, remaining)
	if err != nil {
		return Frame{}, err
	}
	payload, err := fr.readPayload(int(h.Length), remaining >= 0)
	if err != nil {
		return Frame{}, shortRead(fr.path, start, "frame payload", err)
	}
	if !VerifyFrame(fr.hdr[:], payload) {
		return Frame{}, Corruptf(fr.path, start, "frame checksum mismatch (type %d, length %d)", h.Type, h.Length)
	}
	fr.off = start + FrameHeaderSize + int64(h.Length)
	return Frame{FrameHeader: h, Offset: start, Payload: payload}, nil
}

// readHeader reads the frame header at start into fr.hdr. It returns io.EOF
// at a clean end: at limit, at the end of r, or (with stopAtZero) at zeros,
// including fewer than FrameHeaderSize zeros before the end of the data (a
// preallocated file filled to within a header of its end). A header cut
// short by the end of the data is corruption; it never reads past limit.
func (fr *FrameReader) readHeader(start int64) error {
	want := int64(FrameHeaderSize)
	if fr.limit >= 0 {
		if start >= fr.limit {
			return io.EOF
		}
		want = min(want, fr.limit-start)
	}
	n, err := io.ReadFull(fr.r, fr.hdr[:want])
	if err == io.EOF {
		return io.EOF
	}
	if err != nil && err != io.ErrUnexpectedEOF {
		return shortRead(fr.path, start, "frame header", err)
	}
	if fr.zeroOK && allZero(fr.hdr[:n]) {
		return io.EOF
	}
	if n < FrameHeaderSize {
		return Corruptf(fr.path, start, "truncated frame header: %d of %d bytes before the end of the data", n, FrameHeaderSize)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readPayload reads n bytes into the reader's buffer. When the length was
// bounded by the known size of the data it allocates n at once; on a stream
// of unknown length it grows the buffer as bytes actually arrive (see
// ReadGrowing).
func (fr *FrameReader) readPayload(n int, bounded bool) ([]byte, error) {
	if (bounded || n <= streamStep) && cap(fr.buf) < n {
		fr.buf = make([]byte, n)
	}
	b, err := ReadGrowing(fr.r, fr.buf, n)
	if b != nil {
		fr.buf = b
	}
	return b, err
}

// ReadGrowing reads n bytes from r into buf's memory, in steps of at most
// streamStep (1 MiB), growing it before each step only by that step: a
// damaged length read from a stream of unknown size costs at most what the
// stream really holds, not what the length claims. It returns the n bytes
// (in buf's memory if it had room), or nil and the error of the step that
// failed (io.EOF if the stream ended exactly between two steps).
func ReadGrowing(r io.Reader, buf []byte, n int) ([]byte, error) {
	buf = buf[:0]
	for len(buf) < n {
		step := min(streamStep, n-len(buf))
		buf = slices.Grow(buf, step)
		if _, err := io.ReadFull(r, buf[len(buf):len(buf)+step]); err != nil {
			return nil, err
		}
		buf = buf[:len(buf)+step]
	}
	return buf, nil
}

// streamStep is how much a FrameReader on a stream of unknown length
// allocates ahead of the bytes it has actually read.
const streamStep = 1 << 20
