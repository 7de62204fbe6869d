package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// extSize is the size of the segment header's ext (see doc.go).
const extSize = 16 + 8 + 8 + 8 + 8

// headerSize is the size of a segment's file header; records start there.
var headerSize = int64(format.HeaderSize(extSize))

// recordHeaderSize is the index and term at the start of every payload.
const recordHeaderSize = 16

// maxData is the largest Entry.Data that fits in one frame.
const maxData = format.MaxFrameSize - recordHeaderSize

// segHeader is the decoded ext of a segment header.
type segHeader struct {
	storeID   [16]byte
	first     uint64 // index of the segment's first record
	term      uint64 // term when the segment was created
	prevFirst uint64 // first index of the previous segment (0: none)
	prevSum   uint64 // header checksum of the previous segment (0: none)
}

// link names a segment for its successor's header: its first index and its
// header checksum.
type link struct{ first, sum uint64 }

func (h *segHeader) prev() link { return link{h.prevFirst, h.prevSum} }

// encode returns the whole file header and its checksum.
func (h *segHeader) encode() ([]byte, uint64) {
	ext := make([]byte, 0, extSize)
	ext = append(ext, h.storeID[:]...)
	ext = binary.LittleEndian.AppendUint64(ext, h.first)
	ext = binary.LittleEndian.AppendUint64(ext, h.term)
	ext = binary.LittleEndian.AppendUint64(ext, h.prevFirst)
	ext = binary.LittleEndian.AppendUint64(ext, h.prevSum)
	b := format.AppendHeader(nil, format.MagicSegment, ext)
	return b, binary.LittleEndian.Uint64(b[len(b)-8:])
}

// readHeader reads and checks the header of the segment file f at path,
// named name. Damage is a *format.CorruptionError.
func readHeader(f vfs.File, path, name string) (segHeader, uint64, error) {
	buf := make([]byte, headerSize)
	if n, err := f.ReadAt(buf, 0); n < len(buf) {
		if err == nil || err == io.EOF {
			return segHeader{}, 0, format.Corruptf(path, 0, "truncated segment header (%d of %d bytes)", n, len(buf))
		}
		return segHeader{}, 0, fmt.Errorf("%s: read header: %w", path, err)
	}
	fh, err := format.ReadHeader(bytes.NewReader(buf), path, format.MagicSegment)
	if err != nil {
		return segHeader{}, 0, err
	}
	if len(fh.Ext) != extSize {
		return segHeader{}, 0, format.Corruptf(path, 12, "segment header ext is %d bytes, want %d", len(fh.Ext), extSize)
	}
	h := decodeExt(fh.Ext)
	if want, ok := format.ParseSegmentName(name); !ok || want != h.first {
		return h, 0, format.Corruptf(path, 16+16, "header says first index %d but the file is named %s", h.first, name)
	}
	return h, binary.LittleEndian.Uint64(buf[headerSize-8:]), nil
}

func decodeExt(ext []byte) segHeader {
	var h segHeader
	copy(h.storeID[:], ext)
	h.first = binary.LittleEndian.Uint64(ext[16:])
	h.term = binary.LittleEndian.Uint64(ext[24:])
	h.prevFirst = binary.LittleEndian.Uint64(ext[32:])
	h.prevSum = binary.LittleEndian.Uint64(ext[40:])
	return h
}

// checkLink says whether h, the header of the segment at path, follows the
// segment prev whose last index was last. Both failures are corruption; the
// reason says which (a gap in indexes, or a header chain break).
func checkLink(h *segHeader, path string, prev link, last uint64) (ProblemKind, error) {
	if h.first != last+1 {
		return Gap, format.Corruptf(path, 0, "gap: segment starts at index %d, the previous one ends at %d", h.first, last)
	}
	if h.prev() != prev {
		return ChainBreak, format.Corruptf(path, 0, "header chain break: links to segment %d (header checksum %016x), the previous segment is %d (%016x)",
			h.prevFirst, h.prevSum, prev.first, prev.sum)
	}
	return 0, nil
}
