package transfer

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/kvtool/kvtool/format"
)

// frameReader reads one direction of a transfer stream: its header, then
// frames. A frame's length is checked against its type's limits before its
// payload is read, and the payload of a stream of unknown length is
// allocated only as its bytes arrive, so a damaged length costs nothing.
// Errors are sticky.
type frameReader struct {
	br   *bufio.Reader
	name string // the stream in errors: the peer's address, or a file
	live bool   // a connection: an early end is the peer going away, not corruption
	off  int64  // stream offset of the next byte
	// mac, if set (one-way streams), receives every byte read except the
	// frames' checksums (see macFrame).
	mac hash.Hash
	// auth, if set (a duplex session after the hellos), checks the tag
	// that follows every frame; tagPending says a chunk frame's tag is
	// still to come, after its data.
	auth       *frameAuth
	tagPending bool
	tag        [tagSize]byte
	hdr        [format.FrameHeaderSize]byte
	buf        []byte // payload
	data       []byte // chunk data
	err        error  // sticky
}

// readBufSize is the read-ahead of a frameReader.
const readBufSize = 256 << 10

func newFrameReader(r io.Reader, name string, live bool) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(r, readBufSize), name: name, live: live}
}

// header reads the stream header and checks that a writer in role and mode
// wrote it.
func (fr *frameReader) header(role format.XferRole, mode format.XferMode) error {
	if fr.err != nil {
		return fr.err
	}
	b := make([]byte, format.XferStreamHeaderSize)
	if err := fr.full(b, "stream header", false); err != nil {
		return fr.fail(err)
	}
	h, err := format.ReadHeader(bytes.NewReader(b), fr.name, format.MagicTransfer)
	if err != nil {
		return fr.fail(fr.notTransfer(err))
	}
	e, err := format.ParseXferStreamExt(h.Ext, fr.name)
	if err != nil {
		return fr.fail(fr.notTransfer(err))
	}
	if e.Role != role || e.Mode != mode {
		return fr.fail(protocolf(fr.name, "stream written by role %d in mode %d, want role %d in mode %d", e.Role, e.Mode, role, mode))
	}
	fr.macWrite(b)
	return nil
}

// notTransfer explains a connection whose first bytes are not a transfer
// stream header: the peer is something else (a wrong address), not a
// damaged stream.
func (fr *frameReader) notTransfer(err error) error {
	if !fr.live {
		return err
	}
	return fmt.Errorf("%w: %s does not speak the kvtool transfer protocol (is it the address of a transfer listener, serve --transfer-listen?): %v",
		ErrProtocol, fr.name, err)
}

// next returns the next frame (its Offset is in the stream; its Payload is
// valid until the next call), as format.FrameReader.Next does. A clean end
// between frames is io.EOF on a file and ErrPeerGone on a connection.
func (fr *frameReader) next() (format.Frame, error) {
	if fr.err != nil {
		return format.Frame{}, fr.err
	}
	f, err := fr.readFrame()
	if err != nil {
		fr.fail(err)
	}
	return f, err
}

func (fr *frameReader) readFrame() (format.Frame, error) {
	start := fr.off
	if err := fr.full(fr.hdr[:], "frame header", true); err != nil {
		return format.Frame{}, err
	}
	h, err := format.ParseFrameHeader(fr.hdr[:], fr.name, start, -1)
	if err != nil {
		return format.Frame{}, err
	}
	lo, hi, ok := format.XferPayloadLimits(h.Type)
	switch {
	case !ok:
		return format.Frame{}, format.Corruptf(fr.name, start, "frame type %d is not a transfer frame", h.Type)
	case int(h.Length) < lo || int(h.Length) > hi:
		return format.Frame{}, format.Corruptf(fr.name, start, "frame of type %d is %d bytes, want %d to %d", h.Type, h.Length, lo, hi)
	}
	p, err := fr.payload(int(h.Length))
	if err != nil {
		return format.Frame{}, err
	}
	if !format.VerifyFrame(fr.hdr[:], p) {
		return format.Frame{}, format.Corruptf(fr.name, start, "frame checksum mismatch (type %d, length %d)", h.Type, h.Length)
	}
	fr.macFrame(h.Type, p)
	if fr.auth != nil {
		fr.auth.begin(fr.hdr[8:], p)
		if h.Type == format.FrameXferChunk {
			fr.tagPending = true
		} else if ok, err := fr.checkTag(); err != nil {
			return format.Frame{}, err
		} else if !ok {
			return format.Frame{}, forged(fr.name, start, h.Type)
		}
	}
	return format.Frame{FrameHeader: h, Offset: start, Payload: p}, nil
}

// checkTag reads the tag of the frame begun and reports whether it is the
// frame's.
func (fr *frameReader) checkTag() (bool, error) {
	if err := fr.full(fr.tag[:], "authentication tag", false); err != nil {
		return false, err
	}
	return hmac.Equal(fr.tag[:], fr.auth.finish()), nil
}

// forged is the error for a frame whose tag is not its own.
func forged(peer string, off int64, t format.FrameType) error {
	return fmt.Errorf("%w, or the stream was altered on the way: the frame of type %d at offset %d from %s fails its authentication tag",
		ErrAuth, t, off, peer)
}

// payload reads n bytes into the reader's buffer with format's bounded
// reading (format.ReadGrowing): the buffer grows only as bytes arrive.
func (fr *frameReader) payload(n int) ([]byte, error) {
	buf, err := format.ReadGrowing(fullReader{fr, "frame payload"}, fr.buf, n)
	if err != nil {
		return nil, err
	}
	fr.buf = buf
	return buf, nil
}

// fullReader reads through frameReader.full, so the bytes count toward the
// stream offset and an early end is reported as what was being read.
type fullReader struct {
	fr   *frameReader
	what string
}

func (r fullReader) Read(p []byte) (int, error) {
	if err := r.fr.full(p, r.what, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// chunkData reads the n bytes of data that follow a chunk frame into the
// reader's buffer, and on a duplex session checks its tag. The caller
// bounds n. The slice is valid until the next call.
func (fr *frameReader) chunkData(n int) ([]byte, error) {
	if cap(fr.data) < n {
		fr.data = make([]byte, n)
	}
	start := fr.off
	d, authentic, err := fr.chunkDataInto(fr.data[:n])
	if err == nil && !authentic {
		err = fr.fail(forged(fr.name, start, format.FrameXferChunk))
	}
	return d, err
}

// chunkDataInto reads the data that follows a chunk frame into d and, on a
// duplex session, its tag. It reports whether the tag is the chunk's; a
// chunk that is not may be damage its own checksum explains, so the
// caller decides (and the stream goes on).
func (fr *frameReader) chunkDataInto(d []byte) ([]byte, bool, error) {
	if fr.err != nil {
		return nil, false, fr.err
	}
	if err := fr.full(d, "chunk data", false); err != nil {
		return nil, false, fr.fail(err)
	}
	fr.macWrite(d)
	if !fr.tagPending {
		return d, fr.auth == nil, nil
	}
	fr.tagPending = false
	fr.auth.add(d)
	ok, err := fr.checkTag()
	if err != nil {
		return nil, false, fr.fail(err)
	}
	return d, ok, nil
}

// full reads len(b) bytes. With atBoundary, an end of stream before the
// first byte is a clean end (io.EOF; ErrPeerGone on a connection).
func (fr *frameReader) full(b []byte, what string, atBoundary bool) error {
	start := fr.off
	n, err := io.ReadFull(fr.br, b)
	fr.off += int64(n)
	switch {
	case err == nil:
		return nil
	case fr.live:
		return gone(fr.name, fmt.Errorf("reading %s at offset %d: %w", what, start, err))
	case err == io.EOF && atBoundary:
		return io.EOF
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return format.Corruptf(fr.name, start, "stream ends inside the %s", what)
	}
	return fmt.Errorf("%s: read %s at offset %d: %w", fr.name, what, start, err)
}

func (fr *frameReader) fail(err error) error {
	if fr.err == nil {
		fr.err = err
	}
	return err
}

// macFrame adds a frame to the MAC: everything but its checksum, and for
// the final frame only up to its MAC field.
func (fr *frameReader) macFrame(t format.FrameType, p []byte) {
	if fr.mac == nil {
		return
	}
	fr.mac.Write(fr.hdr[8:])
	if t == format.FrameXferFinal {
		p = p[:format.XferFinalMACOffset]
	}
	fr.mac.Write(p)
}

func (fr *frameReader) macWrite(b []byte) {
	if fr.mac != nil {
		fr.mac.Write(b)
	}
}

// frameWriter writes one direction of a transfer stream. Errors are
// sticky; on a connection they wrap ErrPeerGone.
type frameWriter struct {
	bw   *bufio.Writer
	name string
	live bool
	n    int64 // bytes written
	mac  hash.Hash
	auth *frameAuth // a duplex session after the hellos: tag every frame
	buf  []byte
	err  error
}

// writeBufSize is the write buffer of a frameWriter: control and tail
// frames gather in it; chunk data larger than it goes out directly.
const writeBufSize = 64 << 10

func newFrameWriter(w io.Writer, name string, live bool) *frameWriter {
	return &frameWriter{bw: bufio.NewWriterSize(w, writeBufSize), name: name, live: live}
}

// header writes the stream header.
func (fw *frameWriter) header(role format.XferRole, mode format.XferMode) error {
	b := format.AppendXferStreamHeader(nil, format.XferStreamExt{Role: role, Mode: mode})
	fw.macWrite(b)
	return fw.write(b)
}

// frame writes a frame of type t whose payload appendPayload appends.
func (fw *frameWriter) frame(t format.FrameType, appendPayload func([]byte) []byte) error {
	b := fw.build(t, appendPayload)
	fw.macWrite(b[8:])
	fw.write(b)
	return fw.writeTag(b, nil)
}

// build returns the frame in the writer's buffer.
func (fw *frameWriter) build(t format.FrameType, appendPayload func([]byte) []byte) []byte {
	b, start := format.BeginFrame(fw.buf[:0], t)
	b = appendPayload(b)
	format.FinishFrame(b, start)
	fw.buf = b
	return b
}

// chunk writes a chunk frame and its data.
func (fw *frameWriter) chunk(c format.XferChunk, data []byte) error {
	b := fw.build(format.FrameXferChunk, func(b []byte) []byte { return format.AppendXferChunk(b, c) })
	fw.macWrite(b[8:])
	fw.write(b)
	fw.macWrite(data)
	fw.write(data)
	return fw.writeTag(b, data)
}

// writeTag writes the tag of frame (and a chunk's data), on a duplex
// session after the hellos.
func (fw *frameWriter) writeTag(frame, data []byte) error {
	if fw.auth == nil {
		return fw.err
	}
	fw.auth.begin(frame[8:format.FrameHeaderSize], frame[format.FrameHeaderSize:])
	fw.auth.add(data)
	return fw.write(fw.auth.finish())
}

// final writes the final frame; on a one-way stream it fills in the MAC
// of everything written before it.
func (fw *frameWriter) final(f format.XferFinal) error {
	f.MAC = [format.XferMACSize]byte{}
	b, start := format.BeginFrame(fw.buf[:0], format.FrameXferFinal)
	b = format.AppendXferFinal(b, f)
	format.FinishFrame(b, start) // sets the length the MAC covers
	if fw.mac != nil {
		macAt := start + format.FrameHeaderSize + format.XferFinalMACOffset
		fw.mac.Write(b[start+8 : macAt])
		copy(b[macAt:], fw.mac.Sum(nil))
		format.FinishFrame(b, start) // the checksum covers the MAC too
	}
	fw.buf = b
	fw.write(b)
	return fw.writeTag(b, nil)
}

func (fw *frameWriter) write(b []byte) error {
	if fw.err != nil {
		return fw.err
	}
	n, err := fw.bw.Write(b)
	fw.n += int64(n)
	return fw.check(err)
}

// flush sends what is buffered.
func (fw *frameWriter) flush() error {
	if fw.err != nil {
		return fw.err
	}
	return fw.check(fw.bw.Flush())
}

func (fw *frameWriter) check(err error) error {
	if err == nil {
		return nil
	}
	if fw.live {
		fw.err = gone(fw.name, fmt.Errorf("writing at offset %d: %w", fw.n, err))
	} else {
		fw.err = fmt.Errorf("%s: write at offset %d: %w", fw.name, fw.n, err)
	}
	return fw.err
}

func (fw *frameWriter) macWrite(b []byte) {
	if fw.mac != nil {
		fw.mac.Write(b)
	}
}

// written is the number of bytes handed to the writer (buffered or sent).
func (fw *frameWriter) written() int64 { return fw.n }

var errFinished = errors.New("kvtool/transfer: finished")
