package table

import (
	"encoding/binary"

	"github.com/kvtool/kvtool/format"
)

const (
	// footerPayloadSize is the fixed size of the footer payload: ten u64s.
	footerPayloadSize = 80
	// FooterSize is the size of the footer frame at the end of every table.
	FooterSize = format.FrameHeaderSize + footerPayloadSize
	// minBlockFrame is the smallest block frame: a frame header and a block
	// prefix.
	minBlockFrame = format.FrameHeaderSize + format.BlockPrefixSize
)

// footer is the decoded footer payload.
type footer struct {
	indexOff, indexLen uint64 // the index frames: [indexOff, indexOff+indexLen)
	blocks             uint64
	puts, tombstones   uint64
	hash               uint64 // see entryHasher
	index, fromIndex   uint64
	term               uint64
	checksum           uint64 // xxh64 of every byte before the footer frame
}

func (f *footer) fields() [10]*uint64 {
	return [10]*uint64{&f.indexOff, &f.indexLen, &f.blocks, &f.puts, &f.tombstones,
		&f.hash, &f.index, &f.fromIndex, &f.term, &f.checksum}
}

// appendFooter appends the footer frame of f to dst.
func appendFooter(dst []byte, f footer) []byte {
	dst, start := format.BeginFrame(dst, format.FrameFooter)
	for _, p := range f.fields() {
		dst = binary.LittleEndian.AppendUint64(dst, *p)
	}
	format.FinishFrame(dst, start)
	return dst
}

// parseFooter decodes the footer frame b (FooterSize bytes at offset off of
// path) and checks its frame header and checksum.
func parseFooter(b []byte, path string, off int64) (footer, error) {
	var f footer
	h, err := format.ParseFrameHeader(b, path, off, footerPayloadSize)
	if err != nil {
		return f, err
	}
	if h.Type != format.FrameFooter || h.Length != footerPayloadSize {
		return f, format.Corruptf(path, off, "no table footer at the end of the file (frame type %d, length %d)", h.Type, h.Length)
	}
	if !format.VerifyFrame(b, b[format.FrameHeaderSize:]) {
		return f, format.Corruptf(path, off, "footer checksum mismatch")
	}
	p := b[format.FrameHeaderSize:]
	for i, fp := range f.fields() {
		*fp = binary.LittleEndian.Uint64(p[8*i:])
	}
	return f, nil
}

// check checks the footer's offsets and counts against the file: the
// index ends exactly where the footer starts, begins after the header, and
// the counts fit in the bytes available. It bounds every later allocation.
func (f *footer) check(path string, off, headerEnd int64) error {
	switch {
	case f.indexOff < uint64(headerEnd) || f.indexOff > uint64(off):
		return format.Corruptf(path, off, "footer: index offset %d outside [%d, %d]", f.indexOff, headerEnd, off)
	case f.indexLen != uint64(off)-f.indexOff:
		return format.Corruptf(path, off, "footer: index length %d, want %d (up to the footer)", f.indexLen, uint64(off)-f.indexOff)
	case f.indexLen < format.FrameHeaderSize+4:
		return format.Corruptf(path, off, "footer: index length %d too short for an index frame", f.indexLen)
	case f.blocks > (f.indexOff-uint64(headerEnd))/minBlockFrame:
		return format.Corruptf(path, off, "footer: %d blocks cannot fit in %d bytes", f.blocks, f.indexOff-uint64(headerEnd))
	case f.puts > maxEntries(f.indexOff) || f.tombstones > maxEntries(f.indexOff)-f.puts:
		return format.Corruptf(path, off, "footer: %d puts and %d tombstones cannot fit in the file", f.puts, f.tombstones)
	}
	return nil
}

// maxEntries bounds the entries that n bytes of blocks can hold: every
// entry takes at least 3 bytes of a block, uncompressed, and a block frame
// of b bytes holds at most format.MaxBlockSize of them.
func maxEntries(n uint64) uint64 {
	return (n/minBlockFrame + 1) * (format.MaxBlockSize / 3)
}
