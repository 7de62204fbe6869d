package segment

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// segReader reads the records of one segment file in order. It checks each
// frame (format), each record (type, index contiguity, term order), and
// stops at the end of data: a zeroed frame header or the end of the file.
type segReader struct {
	f      vfs.File
	path   string
	size   int64 // file size when opened
	hdr    segHeader
	hdrSum uint64
	br     *bufio.Reader
	fr     *format.FrameReader
	expect uint64 // index the next record must have
	term   uint64 // term of the last record (or of the header)
	end    int64  // offset just after the last good record or marker
	at     int64  // offset of the frame next returned last, or failed at
	// What the segment's markers said (see marker): the size it was
	// preallocated to (0 for a segment written before segment info records
	// existed), where its seal record is (-1: not sealed) and the next
	// index it names, and whether the last frame read is a clean-shutdown
	// record.
	prealloc int64
	sealAt   int64
	sealNext uint64
	closed   bool
}

// readBufSize is the read-ahead of a segment reader.
const readBufSize = 256 << 10

// openSeg opens the segment dir/name and reads its header. A damaged header
// is a *format.CorruptionError; the returned segReader is then nil. br, if
// not nil, is a read buffer to reuse.
func openSeg(fsys vfs.FS, path, name string, br *bufio.Reader) (*segReader, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kvtool/segment: open %s: %w", path, err)
	}
	s, err := newSegReader(f, path, name, br)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func newSegReader(f vfs.File, path, name string, br *bufio.Reader) (*segReader, error) {
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("kvtool/segment: size of %s: %w", path, err)
	}
	h, sum, err := readHeader(f, path, name)
	if err != nil {
		return nil, err
	}
	s := &segReader{f: f, path: path, size: size, hdr: h, hdrSum: sum, expect: h.first, term: h.term, br: br, sealAt: -1}
	s.seek(headerSize, h.first)
	return s, nil
}

// seek makes the reader continue at off, expecting index expect there.
// Its reads start small and grow (rampReader).
func (s *segReader) seek(off int64, expect uint64) {
	sec := &rampReader{r: io.NewSectionReader(s.f, off, s.size-off), n: firstRead}
	if s.br == nil {
		s.br = bufio.NewReaderSize(sec, int(min(readBufSize, s.size)))
	} else {
		s.br.Reset(sec)
	}
	s.fr = format.NewFrameReader(s.br, s.path, off, s.size, true)
	s.end, s.expect = off, expect
}

// firstRead is the first read after a seek (rampReader).
const firstRead = 4 << 10

// rampReader reads from r at most n bytes at a time, n doubling with each
// read. A reader that follows a live log (Reader.Follow) seeks back to its
// last record after every fsync of the log, where a few records are new and
// the rest of the preallocated segment is zeros: a full read-ahead there
// would copy a quarter megabyte from the file each time (most of a
// transfer source's CPU while a store commits), where a short read copies
// what is new. A reader that goes on reaches full reads after a few.
type rampReader struct {
	r io.Reader
	n int
}

func (rr *rampReader) Read(p []byte) (int, error) {
	if len(p) > rr.n {
		p = p[:rr.n]
	}
	if rr.n < 1<<30 {
		rr.n *= 2
	}
	return rr.r.Read(p)
}

// skipTo moves a freshly opened reader to the mark m, past the records
// before it. It first reads the segment's first frames up to its first
// record, for what the segment info marker says (its preallocated size,
// which the checks of the segment's end use). If that fails, the reader
// stays at the start, where Next reports the damage.
func (s *segReader) skipTo(m mark) {
	if _, err := s.next(); err != nil || s.expect > m.index || s.end > m.off {
		s.prealloc, s.sealAt, s.closed, s.term = 0, -1, false, s.hdr.term
		s.seek(headerSize, s.hdr.first)
		return
	}
	s.seek(m.off, m.index)
}

func (s *segReader) close() error { return s.f.Close() }

func (s *segReader) link() link { return link{s.hdr.first, s.hdrSum} }

// last returns the index of the last good record read so far.
func (s *segReader) last() uint64 { return s.expect - 1 }

// next returns the next record, checking and passing over marker frames;
// s.at is then the record's offset, or that of the frame that failed. At
// the end of data it returns io.EOF (s.end is then the end-of-data
// offset). A damaged frame is a *format.CorruptionError. An intact frame
// holding a wrong record or marker also matches ErrBadRecord, and the
// reader has then moved past its frame (see skipBad).
func (s *segReader) next() (Entry, error) {
	for {
		f, err := s.fr.Next()
		if err != nil {
			s.at = s.fr.Offset()
			return Entry{}, err
		}
		s.at = f.Offset
		if isMarkerType(f.Type) {
			if err := s.marker(f.FrameHeader, f.Offset, f.Payload); err != nil {
				return Entry{}, badRecord(err)
			}
			s.end = s.fr.Offset()
			continue
		}
		e, err := s.decode(f)
		if err != nil {
			return e, badRecord(err)
		}
		s.expect, s.term, s.end, s.closed = e.Index+1, e.Term, s.fr.Offset(), false
		return e, nil
	}
}

// decode checks one intact frame as a record of this segment.
func (s *segReader) decode(f format.Frame) (Entry, error) {
	off := f.Offset
	if !isEntryType(f.Type) {
		return Entry{}, format.Corruptf(s.path, off, "frame type %d is not a WAL entry type", f.Type)
	}
	if len(f.Payload) < recordHeaderSize {
		return Entry{}, format.Corruptf(s.path, off, "record payload is %d bytes, want at least %d", len(f.Payload), recordHeaderSize)
	}
	e := Entry{
		Index: binary.LittleEndian.Uint64(f.Payload),
		Term:  binary.LittleEndian.Uint64(f.Payload[8:]),
		Type:  f.Type,
		Data:  f.Payload[recordHeaderSize:],
	}
	if s.sealAt >= 0 {
		return e, format.Corruptf(s.path, off, "record %d after the seal record at offset %d (a sealed segment ends there)", e.Index, s.sealAt)
	}
	if e.Index != s.expect {
		return e, format.Corruptf(s.path, off, "record index %d, want %d (indexes must be contiguous)", e.Index, s.expect)
	}
	if e.Term < s.term {
		return e, format.Corruptf(s.path, off, "record %d has term %d, below the previous term %d", e.Index, e.Term, s.term)
	}
	return e, nil
}

// skipBad moves past a record that next rejected with ErrBadRecord, for a
// caller that reports every problem: the frame was intact, so the frame
// reader is already past it, and the following record is expected to
// continue from the bad one's index (if it could be read).
func (s *segReader) skipBad(e Entry) {
	if e.Index != 0 {
		s.expect = e.Index + 1
	}
	s.end = s.fr.Offset()
}

func isEntryType(t format.FrameType) bool {
	return t == format.FrameWALTxn || t == format.FrameWALNoop || t == format.FrameWALConf || t == format.FrameWALRaft
}

// tail describes the bytes of a segment after a given offset.
type tail struct {
	firstNonzero int64  // offset of the first nonzero byte, -1 if none
	endNonzero   int64  // offset just after the last nonzero byte (the start offset if none)
	validAt      int64  // offset of the first intact record, seal or close frame found, -1 if none
	validEnd     int64  // offset just after that frame
	validIndex   uint64 // the last index it vouches for (see coveredIndex)
}

// tailChunk is how much scanTail reads at a time.
const tailChunk = 1 << 20

// scanTail examines [from, size) of f: where nonzero bytes are, and whether
// an intact record, seal or close frame (checksum, type, an index above
// after) starts anywhere in it (after == noIndex: only the nonzero bytes).
// It stops at the first such frame. Its cost is one read of the range; it
// allocates at most one chunk and one frame payload (bounded by the range
// and format.MaxFrameSize).
//
// It is what tells a torn tail from corruption: a torn write can leave
// garbage after the last good record, but never an intact frame after it.
func scanTail(f vfs.File, path string, from, size int64, after uint64) (tail, error) {
	t := tail{firstNonzero: -1, endNonzero: from, validAt: -1}
	if from >= size {
		return t, nil
	}
	buf := make([]byte, min(tailChunk, size-from)+format.FrameHeaderSize-1)
	var payload []byte
	for off := from; off < size; off += tailChunk {
		n := int(min(int64(len(buf)), size-off))
		if _, err := f.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			return t, fmt.Errorf("kvtool/segment: %s: read at offset %d: %w", path, off, err)
		}
		own := min(n, tailChunk) // bytes of this chunk; the rest is overlap
		if allZero(buf[:n]) {
			continue // no nonzero byte, and no frame: its type byte would be nonzero
		}
		for i := 0; i < own; i++ {
			p := off + int64(i)
			if buf[i] != 0 {
				if t.firstNonzero < 0 {
					t.firstNonzero = p
				}
				t.endNonzero = p + 1
			}
			// A frame may start with a zero byte: its checksum's low byte.
			if after == noIndex || i+format.FrameHeaderSize > n || !maybeFrame(buf[i:i+format.FrameHeaderSize]) {
				continue
			}
			idx, n, err := intactAt(f, path, buf[i:i+format.FrameHeaderSize], p, size, &payload)
			if err != nil {
				return t, err
			}
			if n > 0 && idx > after {
				t.validAt, t.validEnd, t.validIndex = p, p+n, idx
				return t, nil
			}
		}
	}
	return t, nil
}

// allZero reports whether b holds only zero bytes. A preallocated
// segment's remainder is zeros: checking a chunk a word at a time before
// filtering every byte for a frame cut the CPU of scanning a 64 MiB
// remainder at open from about 300 ms to a tenth of that.
func allZero(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != 0 {
			return false
		}
	}
	for ; i < len(b); i++ {
		if b[i] != 0 {
			return false
		}
	}
	return true
}

// maybeFrame is a cheap filter: the type is an entry, seal or close type
// and the reserved bytes are zero.
func maybeFrame(h []byte) bool {
	t := format.FrameType(h[12])
	return (isEntryType(t) || t == format.FrameWALSeal || t == format.FrameWALClose) && h[13]|h[14]|h[15] == 0
}

// intactAt reports whether an intact frame with header hdr (one maybeFrame
// passed) starts at off: the index it vouches for and its size, or a size
// of 0 if not.
func intactAt(f vfs.File, path string, hdr []byte, off, size int64, payload *[]byte) (uint64, int64, error) {
	n := int64(binary.LittleEndian.Uint32(hdr[8:]))
	minLen := int64(recordHeaderSize)
	if !isEntryType(format.FrameType(hdr[12])) {
		minLen = 8
	}
	if n < minLen || n > format.MaxFrameSize || off+format.FrameHeaderSize+n > size {
		return 0, 0, nil
	}
	if int64(cap(*payload)) < n {
		*payload = make([]byte, n)
	}
	p := (*payload)[:n]
	if _, err := f.ReadAt(p, off+format.FrameHeaderSize); err != nil && err != io.EOF {
		return 0, 0, fmt.Errorf("kvtool/segment: %s: read at offset %d: %w", path, off, err)
	}
	if !format.VerifyFrame(hdr, p) {
		return 0, 0, nil
	}
	return coveredIndex(format.FrameType(hdr[12]), binary.LittleEndian.Uint64(p)), format.FrameHeaderSize + n, nil
}
