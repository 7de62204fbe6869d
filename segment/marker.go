package segment

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// markerSize is the size of a marker frame (seal, close, segment info): a
// frame header and one u64.
const markerSize = format.FrameHeaderSize + 8

// trailerSize is the room the active segment keeps free after its data for
// the seal or close record that will end it, so that writing either never
// grows the file past its preallocation (and never meets a full disk).
const trailerSize = markerSize

func isMarkerType(t format.FrameType) bool {
	return t == format.FrameWALSeal || t == format.FrameWALClose || t == format.FrameWALSegInfo
}

// appendMarker appends a marker frame of type t holding v.
func appendMarker(dst []byte, t format.FrameType, v uint64) []byte {
	var p [8]byte
	binary.LittleEndian.PutUint64(p[:], v)
	return format.AppendFrame(dst, t, p[:])
}

// marker checks the marker frame h (payload p) at off and records what it
// says. Damage is a *format.CorruptionError.
func (s *segReader) marker(h format.FrameHeader, off int64, p []byte) error {
	if len(p) != 8 {
		return format.Corruptf(s.path, off, "marker frame (type %d) holds %d bytes, want 8", h.Type, len(p))
	}
	if s.sealAt >= 0 {
		return format.Corruptf(s.path, off, "frame after the seal record at offset %d (a sealed segment ends there)", s.sealAt)
	}
	v := binary.LittleEndian.Uint64(p)
	switch h.Type {
	case format.FrameWALSegInfo:
		if off != headerSize || v == 0 {
			return format.Corruptf(s.path, off, "segment info record (preallocated size %d) must be the first frame, with a size", v)
		}
		s.prealloc = int64(min(v, 1<<62))
	case format.FrameWALClose:
		if v != s.last() {
			return format.Corruptf(s.path, off, "clean-shutdown record names index %d, but the last entry before it is %d", v, s.last())
		}
		s.closed = true
	case format.FrameWALSeal:
		if v != s.expect {
			return format.Corruptf(s.path, off, "seal record names index %d as the next segment's first, but the last entry is %d", v, s.last())
		}
		s.sealAt, s.sealNext = off, v
	}
	return nil
}

// coveredIndex is the last log index an intact frame of type t whose
// payload starts with the u64 v vouches for: an entry's own index, the
// index a clean-shutdown record names, the one before a seal's next index.
func coveredIndex(t format.FrameType, v uint64) uint64 {
	if t == format.FrameWALSeal && v > 0 {
		return v - 1
	}
	return v
}

// tornFrame reports whether the damaged frame at off, in a segment whose
// bytes end at size, is what an interrupted write leaves behind. A write
// that a crash cuts keeps a prefix of its bytes: the rest reads as the
// preallocated zeros, or is missing past the end of the file. So the frame
// is torn when it is incomplete: its header is cut by the end of the file,
// or the bytes it claims end in zeros (or run past the end of the file)
// with nothing nonzero after them. A frame whose bytes are all there (its
// last byte is not zero) but whose checksum fails was damaged after it was
// written, and so is one whose checksum verifies once its length field is
// corrected (a damaged length makes a whole frame look short of bytes).
//
// What it cannot tell from a torn write: damage to a last frame whose own
// final bytes are zeros (such as a no-op entry), since a torn write of it
// looks the same.
func tornFrame(f vfs.File, path string, off, size int64) (bool, error) {
	hdr := make([]byte, format.FrameHeaderSize)
	n, err := f.ReadAt(hdr, off)
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("kvtool/segment: %s: read at offset %d: %w", path, off, err)
	}
	if n < len(hdr) {
		return true, nil // the file ends inside the frame header
	}
	t, err := scanTail(f, path, off, size, noIndex)
	if err != nil {
		return false, err
	}
	claimed := off + format.FrameHeaderSize
	length := int64(binary.LittleEndian.Uint32(hdr[8:]))
	parses := hdr[12] != 0 && hdr[13]|hdr[14]|hdr[15] == 0 && length <= format.MaxFrameSize
	if parses {
		claimed += length
	}
	if t.endNonzero >= claimed {
		return false, nil // every byte the frame claims is there (or more)
	}
	if !parses {
		return true, nil
	}
	damaged, err := lengthDamaged(f, path, hdr, off, t.endNonzero, size)
	return !damaged, err
}

// lengthDamaged reports whether the frame at off (header hdr) verifies with
// some other length that covers its nonzero bytes (ending at end) and up to
// 16 zero bytes after them: then the frame is whole and only its length
// field was damaged.
func lengthDamaged(f vfs.File, path string, hdr []byte, off, end, size int64) (bool, error) {
	base := max(end-off-format.FrameHeaderSize, 0)
	hi := min(base+16, format.MaxFrameSize, size-off-format.FrameHeaderSize)
	if hi < base {
		return false, nil
	}
	payload := make([]byte, hi)
	if _, err := f.ReadAt(payload, off+format.FrameHeaderSize); err != nil && err != io.EOF {
		return false, fmt.Errorf("kvtool/segment: %s: read at offset %d: %w", path, off, err)
	}
	h := append([]byte(nil), hdr...)
	claimed := int64(binary.LittleEndian.Uint32(hdr[8:]))
	for n := base; n <= hi; n++ {
		if n == claimed {
			continue
		}
		binary.LittleEndian.PutUint32(h[8:], uint32(n))
		if format.VerifyFrame(h, payload[:n]) {
			return true, nil
		}
	}
	return false, nil
}
