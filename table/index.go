package table

import (
	"bytes"
	"encoding/binary"

	"github.com/kvtool/kvtool/format"
)

// indexFrameTarget is the payload size at which the writer starts a new
// index frame. A variable so tests can exercise multi-frame indexes.
var indexFrameTarget = 4 << 20

// indexEntry describes one block: its key range, where its frame is, and
// how many entries it holds.
type indexEntry struct {
	first, last []byte // first and last key of the block
	off         int64  // offset of the block's frame
	length      uint32 // length of the frame, header included
	count       uint32 // entries in the block
	at          int64  // offset of the index frame that holds this entry
}

// minIndexEntry is the smallest encoded index entry: two empty keys.
const minIndexEntry = 1 + 1 + 8 + 4 + 4

// indexBuilder accumulates the index payloads while a table is written.
type indexBuilder struct {
	done [][]byte // finished payloads
	cur  []byte   // current payload, count placeholder in cur[:4]
	n    uint32   // entries in cur
}

func (b *indexBuilder) add(first, last []byte, off int64, length, count uint32) {
	size := binary.MaxVarintLen32*2 + len(first) + len(last) + 16
	if b.n > 0 && len(b.cur)+size > indexFrameTarget {
		b.finishFrame()
	}
	if b.cur == nil {
		b.cur = make([]byte, 4, 4096)
	}
	b.cur = appendBytes(b.cur, first)
	b.cur = appendBytes(b.cur, last)
	b.cur = binary.LittleEndian.AppendUint64(b.cur, uint64(off))
	b.cur = binary.LittleEndian.AppendUint32(b.cur, length)
	b.cur = binary.LittleEndian.AppendUint32(b.cur, count)
	b.n++
}

func (b *indexBuilder) finishFrame() {
	if b.cur == nil {
		b.cur = make([]byte, 4)
	}
	binary.LittleEndian.PutUint32(b.cur, b.n)
	b.done = append(b.done, b.cur)
	b.cur, b.n = nil, 0
}

// payloads finishes the index and returns its frame payloads: at least one,
// so that even an empty table has an index frame.
func (b *indexBuilder) payloads() [][]byte {
	if b.n > 0 || len(b.done) == 0 {
		b.finishFrame()
	}
	return b.done
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// parseIndex decodes the index region region, which starts at offset off
// of path: one or more FrameIndex frames. The entries' keys point into
// region.
func parseIndex(region []byte, path string, off int64) ([]indexEntry, error) {
	var entries []indexEntry
	for pos := 0; pos < len(region); {
		at := off + int64(pos)
		payload, err := indexFrame(region[pos:], path, at)
		if err != nil {
			return nil, err
		}
		if entries, err = parseIndexPayload(entries, payload, path, at); err != nil {
			return nil, err
		}
		pos += format.FrameHeaderSize + len(payload)
	}
	return entries, nil
}

// indexFrame checks the FrameIndex frame at the start of b (offset at) and
// returns its payload.
func indexFrame(b []byte, path string, at int64) ([]byte, error) {
	if len(b) < format.FrameHeaderSize {
		return nil, format.Corruptf(path, at, "truncated index frame header")
	}
	h, err := format.ParseFrameHeader(b, path, at, int64(len(b)-format.FrameHeaderSize))
	if err != nil {
		return nil, err
	}
	if h.Type != format.FrameIndex {
		return nil, format.Corruptf(path, at, "frame type %d where the index should be", h.Type)
	}
	payload := b[format.FrameHeaderSize : format.FrameHeaderSize+int(h.Length)]
	if !format.VerifyFrame(b, payload) {
		return nil, format.Corruptf(path, at, "index frame checksum mismatch")
	}
	return payload, nil
}

// parseIndexPayload appends the entries of one index payload to entries.
func parseIndexPayload(entries []indexEntry, p []byte, path string, at int64) ([]indexEntry, error) {
	if len(p) < 4 {
		return nil, format.Corruptf(path, at, "index payload of %d bytes has no count", len(p))
	}
	n := binary.LittleEndian.Uint32(p)
	if uint64(n) > uint64(len(p)-4)/minIndexEntry {
		return nil, format.Corruptf(path, at, "index frame cannot hold %d entries in %d bytes", n, len(p))
	}
	entries = growEntries(entries, int(n))
	rest := p[4:]
	for i := uint32(0); i < n; i++ {
		e, r, ok := parseIndexEntry(rest)
		if !ok {
			return nil, format.Corruptf(path, at, "index entry %d runs past the index frame", i)
		}
		e.at = at
		entries, rest = append(entries, e), r
	}
	if len(rest) != 0 {
		return nil, format.Corruptf(path, at, "%d stray bytes after the index entries", len(rest))
	}
	return entries, nil
}

func growEntries(s []indexEntry, n int) []indexEntry {
	if cap(s)-len(s) < n {
		s = append(make([]indexEntry, 0, len(s)+n), s...)
	}
	return s
}

// parseIndexEntry decodes one entry from the start of b.
func parseIndexEntry(b []byte) (indexEntry, []byte, bool) {
	var e indexEntry
	var ok bool
	if e.first, b, ok = takeBytes(b); !ok {
		return e, nil, false
	}
	if e.last, b, ok = takeBytes(b); !ok || len(b) < 16 {
		return e, nil, false
	}
	e.off = int64(binary.LittleEndian.Uint64(b))
	e.length = binary.LittleEndian.Uint32(b[8:])
	e.count = binary.LittleEndian.Uint32(b[12:])
	return e, b[16:], true
}

func takeBytes(b []byte) (v, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	end := k + int(n)
	return b[k:end:end], b[end:], true
}

// checkIndex checks the index against the footer and the file: blocks
// follow the header without gaps up to the index, every block holds at
// least one entry, key ranges are ordered and disjoint, and the counts add
// up. After it, every offset and length in entries is inside the file.
func checkIndex(entries []indexEntry, f *footer, path string, headerEnd int64) error {
	if uint64(len(entries)) != f.blocks {
		return format.Corruptf(path, int64(f.indexOff), "index lists %d blocks, footer says %d", len(entries), f.blocks)
	}
	next, total := headerEnd, uint64(0)
	for i := range entries {
		if err := checkIndexEntry(entries, i, next, path); err != nil {
			return err
		}
		next += int64(entries[i].length)
		total += uint64(entries[i].count)
	}
	if next != int64(f.indexOff) {
		return format.Corruptf(path, int64(f.indexOff), "blocks end at %d, index starts at %d", next, f.indexOff)
	}
	if total != f.puts+f.tombstones {
		return format.Corruptf(path, int64(f.indexOff), "index counts %d entries, footer %d", total, f.puts+f.tombstones)
	}
	return nil
}

func checkIndexEntry(entries []indexEntry, i int, want int64, path string) error {
	e := &entries[i]
	switch {
	case e.off != want:
		return format.Corruptf(path, e.at, "index entry %d: block at offset %d, want %d", i, e.off, want)
	case e.length < minBlockFrame || e.length > format.FrameHeaderSize+format.MaxFrameSize:
		return format.Corruptf(path, e.at, "index entry %d: block length %d out of range", i, e.length)
	case e.count == 0 || e.count > format.MaxBlockSize/3:
		return format.Corruptf(path, e.at, "index entry %d: entry count %d out of range", i, e.count)
	case bytes.Compare(e.first, e.last) > 0 || (e.count == 1) != bytes.Equal(e.first, e.last):
		return format.Corruptf(path, e.at, "index entry %d: first and last keys inconsistent", i)
	case i > 0 && bytes.Compare(entries[i-1].last, e.first) >= 0:
		return format.Corruptf(path, e.at, "index entry %d: first key not after the previous block's last key", i)
	}
	return nil
}
