package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/klauspost/compress/huff0"
	"github.com/klauspost/compress/zstd"
)

// EntryKind says what a block entry records. The values are part of the
// on-disk format and never change; 0 is never valid.
type EntryKind uint8

// Entry kinds.
const (
	EntryPut    EntryKind = 1 // the key holds the value
	EntryDelete EntryKind = 2 // the key was deleted (a tombstone, in deltas); no value
)

// String returns "put", "delete" or "kind(N)".
func (k EntryKind) String() string {
	switch k {
	case EntryPut:
		return "put"
	case EntryDelete:
		return "delete"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// BlockCodec says how the entries of a block are compressed. The values are
// part of the on-disk format and never change.
type BlockCodec uint8

// Block codecs.
const (
	CodecNone  BlockCodec = 0 // entries stored as they are
	CodecZstd  BlockCodec = 1 // entries in one zstd frame (klauspost/compress)
	CodecHuff0 BlockCodec = 2 // entries as one huff0 4X stream with its table (klauspost/compress/huff0): entropy coding only, no match search
)

// CodecAuto is never stored in a block: it asks a BlockWriter to choose,
// block by block, between zstd and huff0. It compresses the first
// AutoSample bytes of the block both ways and uses zstd only where zstd's
// match search makes that sample at least a fifth smaller than huff0 does
// (repeated strings, as in the README's example); elsewhere huff0, which
// compresses about 3.5x faster (BenchmarkBlockCodecs: 620 vs 170 MB/s of
// CPU on the checkpoint benchmark's blocks, at ratios 0.66 vs 0.57). The
// choice depends only on the block's bytes, so a file is the same however
// many goroutines compressed it.
const CodecAuto BlockCodec = 0xff

// AutoSample is how many bytes of a block CodecAuto compresses both ways.
const AutoSample = 8 << 10

// Huff0MaxBlock is the largest block CodecHuff0 can hold; a BlockWriter
// stores a larger block with zstd instead.
const Huff0MaxBlock = huff0.BlockSizeMax

const (
	// BlockPrefixSize is the size of the fixed prefix of a block payload:
	// codec u8, uncompressed length u32, entry count u32.
	BlockPrefixSize = 9
	// MaxBlockSize bounds the uncompressed entry bytes of one block. A larger
	// length read from disk is corruption, so decoding a block never
	// allocates more than this (plus the per-entry offsets).
	MaxBlockSize = 4 << 20
	// TargetBlockSize is the usual size at which file writers cut blocks.
	TargetBlockSize = 64 << 10
	// minEntrySize is the smallest encoded entry: two one-byte lengths and
	// the kind.
	minEntrySize = 3
)

// Errors of BlockWriter.Add. They are programming or input errors of the
// writer, never corruption.
var (
	// ErrKeyOrder is returned when a key is not strictly greater than the
	// key added before it.
	ErrKeyOrder = errors.New("kvtool/format: block keys out of order")
	// ErrBadEntry is returned for an invalid kind or a delete with a value.
	ErrBadEntry = errors.New("kvtool/format: invalid block entry")
	// ErrBlockFull is returned when the entry would take the block past
	// MaxBlockSize: Finish the block and add the entry to the next one.
	ErrBlockFull = errors.New("kvtool/format: block full")
	// ErrEntryTooLarge is returned when an entry alone exceeds MaxBlockSize;
	// no block can hold it.
	ErrEntryTooLarge = errors.New("kvtool/format: entry larger than MaxBlockSize")
)

// EntrySize returns the number of uncompressed bytes an entry with this key
// and value adds to a block.
func EntrySize(key, value []byte) int {
	return blockVarintLen(len(key)) + blockVarintLen(len(value)) + 1 + len(key) + len(value)
}

func blockVarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// BlockWriter builds block payloads from entries added in strictly increasing
// key order. The order is kept across Finish, so one BlockWriter checks the
// order of a whole file; Reset forgets it. The zero value writes uncompressed
// blocks. A BlockWriter is not safe for concurrent use; the shared zstd
// encoder behind it is.
//
// A file writer typically does, per entry:
//
//	if w.Len() > 0 && w.Size()+format.EntrySize(k, v) > format.TargetBlockSize {
//		first := bytes.Clone(w.FirstKey())
//		buf, start := format.BeginFrame(buf[:0], format.FrameBlock)
//		buf = w.Finish(buf)
//		format.FinishFrame(buf, start)
//		// write buf, remember first, offset and len(buf) for the index
//	}
//	err := w.Add(k, v, kind)
type BlockWriter struct {
	codec    BlockCodec
	huff     *huff0.Scratch // CodecHuff0's encoder state, reused block to block
	sample   []byte         // CodecAuto's scratch for the zstd sample
	raw      []byte         // encoded entries of the current block
	count    int            // entries in raw
	firstKey int            // offset in raw of the first entry's key
	last     []byte         // copy of the last key added (kept across Finish)
	hasLast  bool
}

// NewBlockWriter returns a BlockWriter whose blocks use codec. A block
// that the codec does not shrink by at least an eighth is stored
// uncompressed (CodecNone) instead, so reading it costs no decompression.
// CodecHuff0 stores a block larger than Huff0MaxBlock with zstd.
// CodecAuto chooses one of the two for each block.
func NewBlockWriter(codec BlockCodec) *BlockWriter {
	if !codec.Valid() && codec != CodecAuto {
		panic("kvtool/format: unknown block codec") // programming error
	}
	return &BlockWriter{codec: codec}
}

// Valid reports whether c is a codec this version writes and reads.
func (c BlockCodec) Valid() bool { return c == CodecNone || c == CodecZstd || c == CodecHuff0 }

// String returns "none", "zstd", "huff0" or "codec(N)".
func (c BlockCodec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecZstd:
		return "zstd"
	case CodecHuff0:
		return "huff0"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// Add appends an entry to the current block. key must be strictly greater
// than the previous key added; a delete carries no value. On error nothing
// is added.
func (w *BlockWriter) Add(key, value []byte, kind EntryKind) error {
	if kind != EntryPut && kind != EntryDelete {
		return fmt.Errorf("%w: kind %d", ErrBadEntry, kind)
	}
	if kind == EntryDelete && len(value) != 0 {
		return fmt.Errorf("%w: delete of %s carries a %d-byte value", ErrBadEntry, quoteKey(key), len(value))
	}
	if w.hasLast && bytes.Compare(key, w.last) <= 0 {
		return fmt.Errorf("%w: %s after %s", ErrKeyOrder, quoteKey(key), quoteKey(w.last))
	}
	n := EntrySize(key, value)
	if n > MaxBlockSize {
		return fmt.Errorf("%w: %d bytes", ErrEntryTooLarge, n)
	}
	if len(w.raw)+n > MaxBlockSize {
		return fmt.Errorf("%w: %d + %d bytes", ErrBlockFull, len(w.raw), n)
	}
	w.raw = binary.AppendUvarint(w.raw, uint64(len(key)))
	w.raw = binary.AppendUvarint(w.raw, uint64(len(value)))
	w.raw = append(w.raw, byte(kind))
	if w.count == 0 {
		w.firstKey = len(w.raw)
	}
	w.raw = append(w.raw, key...)
	w.raw = append(w.raw, value...)
	w.count++
	w.last = append(w.last[:0], key...)
	w.hasLast = true
	return nil
}

// Len returns the number of entries in the current block.
func (w *BlockWriter) Len() int { return w.count }

// Size returns the uncompressed size of the current block's entries, the
// number to compare with a target block size.
func (w *BlockWriter) Size() int { return len(w.raw) }

// FirstKey returns the first key of the current block (nil if it is empty).
// It is valid until the next Finish or Reset.
func (w *BlockWriter) FirstKey() []byte {
	if w.count == 0 {
		return nil
	}
	kl, _ := binary.Uvarint(w.raw)
	return w.raw[w.firstKey : w.firstKey+int(kl)]
}

// LastKey returns the last key added (nil if none since Reset). It is valid
// until the next Add or Reset.
func (w *BlockWriter) LastKey() []byte {
	if !w.hasLast {
		return nil
	}
	return w.last
}

// Finish appends the payload of the current block to dst and returns the
// extended slice, then starts an empty block. The key order carries on:
// the next Add must still follow LastKey. Appending lets a file writer build
// the payload straight into a frame (BeginFrame, Finish, FinishFrame).
func (w *BlockWriter) Finish(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, byte(CodecNone))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(w.raw)))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(w.count))
	body := len(dst)
	codec := w.codec
	if codec == CodecAuto {
		codec = w.choose()
	}
	if codec == CodecHuff0 && len(w.raw) > Huff0MaxBlock {
		codec = CodecZstd
	}
	switch {
	case len(w.raw) == 0 || codec == CodecNone:
	case codec == CodecZstd:
		dst = zstdEncoder().EncodeAll(w.raw, dst)
	case codec == CodecHuff0:
		if out, _, err := huff0.Compress4X(w.raw, w.huffScratch()); err == nil {
			dst = append(dst, out...)
		} // else incompressible, or one repeated byte: stored raw
	}
	if n := len(dst) - body; n > 0 && n < len(w.raw)-len(w.raw)/8 {
		dst[start] = byte(codec)
	} else {
		dst = append(dst[:body], w.raw...)
	}
	w.clearBlock()
	return dst
}

func (w *BlockWriter) huffScratch() *huff0.Scratch {
	if w.huff == nil {
		w.huff = &huff0.Scratch{Reuse: huff0.ReusePolicyNone} // every block carries its own table
	}
	return w.huff
}

// choose is CodecAuto's choice for the current block: zstd where its
// sample comes out at most four fifths of huff0's, else huff0. A sample
// huff0 cannot compress (one repeated byte, or no gain) counts at its raw
// size.
func (w *BlockWriter) choose() BlockCodec {
	if len(w.raw) > Huff0MaxBlock {
		return CodecZstd
	}
	sample := w.raw[:min(len(w.raw), AutoSample)]
	w.sample = zstdEncoder().EncodeAll(sample, w.sample[:0])
	h := len(sample)
	if out, _, err := huff0.Compress4X(sample, w.huffScratch()); err == nil {
		h = len(out)
	}
	if 5*len(w.sample) <= 4*h {
		return CodecZstd
	}
	return CodecHuff0
}

// Reset starts an empty block and forgets the key order.
func (w *BlockWriter) Reset() {
	w.clearBlock()
	w.last = w.last[:0]
	w.hasLast = false
}

func (w *BlockWriter) clearBlock() {
	w.raw = w.raw[:0]
	w.count = 0
	w.firstKey = 0
}

// quoteKey formats a key for an error message, shortened if long.
func quoteKey(k []byte) string {
	const max = 64
	if len(k) > max {
		return fmt.Sprintf("%q...(%d bytes)", k[:max], len(k))
	}
	return fmt.Sprintf("%q", k)
}

// The zstd encoder and decoder are expensive to create and safe for
// concurrent EncodeAll/DecodeAll, so the package shares one of each.
var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest), // ~3x faster than SpeedDefault here at an equal ratio on checkpoint data
			zstd.WithEncoderCRC(false))               // the frame's xxh64 already covers the block
		if err != nil {
			panic("kvtool/format: zstd encoder: " + err.Error()) // constant options
		}
		return e
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(MaxBlockSize),
			zstd.WithDecodeAllCapLimit(true)) // never decode past cap(dst) = the declared length
		if err != nil {
			panic("kvtool/format: zstd decoder: " + err.Error()) // constant options
		}
		return d
	})
)

// Block is a decoded, validated block: its entries are in strictly
// increasing key order, with valid kinds and lengths. A Block is immutable
// once decoded and safe for concurrent readers (a block cache may share it);
// Decode into it again only when no reader uses it.
type Block struct {
	data  []byte   // uncompressed entries
	offs  []uint32 // start of each entry in data
	codec BlockCodec
}

// DecodeBlock decodes and validates the block payload of the FrameBlock
// frame at offset off of path. The Block never refers to payload. Damage is
// a *CorruptionError naming path and off.
func DecodeBlock(payload []byte, path string, off int64) (*Block, error) {
	b := new(Block)
	if err := b.Decode(payload, path, off); err != nil {
		return nil, err
	}
	return b, nil
}

// Decode is DecodeBlock into b, reusing b's memory: keys and values taken
// from b before are invalid afterwards. On error b is empty.
func (b *Block) Decode(payload []byte, path string, off int64) error {
	b.data, b.offs, b.codec = b.data[:0], b.offs[:0], CodecNone
	if len(payload) < BlockPrefixSize {
		return Corruptf(path, off, "block payload of %d bytes is shorter than its %d-byte prefix", len(payload), BlockPrefixSize)
	}
	codec := BlockCodec(payload[0])
	rawLen := binary.LittleEndian.Uint32(payload[1:])
	count := binary.LittleEndian.Uint32(payload[5:])
	if rawLen > MaxBlockSize {
		return Corruptf(path, off, "block length %d exceeds limit %d", rawLen, MaxBlockSize)
	}
	if uint64(count)*minEntrySize > uint64(rawLen) {
		return Corruptf(path, off, "block of %d bytes cannot hold %d entries", rawLen, count)
	}
	data, err := b.uncompress(codec, payload[BlockPrefixSize:], int(rawLen))
	if err != nil {
		return Corruptf(path, off, "%v", err)
	}
	b.data = data[:0] // keep the buffer for the next Decode even if parsing fails
	offs, err := parseEntries(data, b.offs[:0], int(count))
	if err != nil {
		return Corruptf(path, off, "%v", err)
	}
	b.data, b.offs, b.codec = data, offs, codec
	return nil
}

// uncompress returns the rawLen entry bytes of body in b's buffer.
func (b *Block) uncompress(codec BlockCodec, body []byte, rawLen int) ([]byte, error) {
	switch codec {
	case CodecNone:
		if len(body) != rawLen {
			return nil, fmt.Errorf("uncompressed block holds %d bytes, prefix says %d", len(body), rawLen)
		}
		return append(b.data[:0], body...), nil
	case CodecZstd:
		// The decoder may not write past cap(dst), and its own limit is
		// MaxBlockSize, so a lying zstd header cannot allocate more.
		if cap(b.data) < rawLen {
			b.data = make([]byte, 0, rawLen)
		}
		out, err := zstdDecoder().DecodeAll(body, b.data[:0:rawLen])
		if err != nil {
			return nil, fmt.Errorf("zstd: %v", err)
		}
		if len(out) != rawLen {
			return nil, fmt.Errorf("zstd block decodes to %d bytes, prefix says %d", len(out), rawLen)
		}
		return out, nil
	case CodecHuff0:
		return b.unhuff(body, rawLen)
	}
	return nil, fmt.Errorf("unknown block codec %d", codec)
}

// unhuff decodes a CodecHuff0 body of rawLen bytes into b's buffer. The
// decoder writes exactly cap(dst) = rawLen bytes or fails, so a lying
// stream cannot allocate more.
func (b *Block) unhuff(body []byte, rawLen int) ([]byte, error) {
	if rawLen > Huff0MaxBlock {
		return nil, fmt.Errorf("huff0 block of %d bytes exceeds the codec's %d", rawLen, Huff0MaxBlock)
	}
	s := huffScratch.Get().(*huff0.Scratch)
	defer huffScratch.Put(s)
	s, rest, err := huff0.ReadTable(body, s)
	if err != nil {
		return nil, fmt.Errorf("huff0 table: %v", err)
	}
	if cap(b.data) < rawLen {
		b.data = make([]byte, 0, rawLen)
	}
	out, err := s.Decoder().Decompress4X(b.data[:0:rawLen], rest)
	if err != nil {
		return nil, fmt.Errorf("huff0: %v", err)
	}
	if len(out) != rawLen {
		return nil, fmt.Errorf("huff0 block decodes to %d bytes, prefix says %d", len(out), rawLen)
	}
	return out, nil
}

// huffScratch recycles huff0 decoding tables.
var huffScratch = sync.Pool{New: func() any { return &huff0.Scratch{MaxDecodedSize: Huff0MaxBlock} }}

// parseEntries checks every entry of data and appends their start offsets
// to offs. It wants exactly count entries filling data exactly, valid
// kinds, no value on a delete, and strictly increasing keys.
func parseEntries(data []byte, offs []uint32, count int) ([]uint32, error) {
	var prev []byte
	p := 0
	for i := 0; p < len(data); i++ {
		if i == count {
			return nil, fmt.Errorf("block holds more than its %d entries (extra bytes at %d)", count, p)
		}
		e, ok := parseEntry(data, p)
		if !ok {
			return nil, fmt.Errorf("block entry %d at byte %d: lengths run past the block", i, p)
		}
		if e.kind != EntryPut && e.kind != EntryDelete {
			return nil, fmt.Errorf("block entry %d at byte %d: invalid kind %d", i, p, e.kind)
		}
		if e.kind == EntryDelete && e.vlen != 0 {
			return nil, fmt.Errorf("block entry %d at byte %d: delete carries a %d-byte value", i, p, e.vlen)
		}
		key := data[e.key : e.key+e.klen]
		if i > 0 && bytes.Compare(prev, key) >= 0 {
			return nil, fmt.Errorf("block entry %d at byte %d: key %s not after %s", i, p, quoteKey(key), quoteKey(prev))
		}
		offs = append(offs, uint32(p))
		prev, p = key, e.key+e.klen+e.vlen
	}
	if len(offs) != count {
		return nil, fmt.Errorf("block holds %d entries, prefix says %d", len(offs), count)
	}
	return offs, nil
}

// entryRef locates one entry's parts in a block's data.
type entryRef struct {
	key, klen, vlen int // key start, key length, value length (value follows the key)
	kind            EntryKind
}

// parseEntry decodes the entry header at data[p:]; ok is false if the
// header or the key and value run past the end of data.
func parseEntry(data []byte, p int) (e entryRef, ok bool) {
	kl, n := binary.Uvarint(data[p:])
	if n <= 0 {
		return e, false
	}
	p += n
	vl, n := binary.Uvarint(data[p:])
	if n <= 0 || p+n >= len(data) {
		return e, false
	}
	p += n
	e = entryRef{key: p + 1, kind: EntryKind(data[p])}
	rest := uint64(len(data) - e.key)
	if kl > rest || vl > rest-kl {
		return e, false
	}
	e.klen, e.vlen = int(kl), int(vl)
	return e, true
}

// entry returns entry i of a validated block.
func (b *Block) entry(i int) entryRef {
	e, _ := parseEntry(b.data, int(b.offs[i]))
	return e
}

// Len returns the number of entries.
func (b *Block) Len() int { return len(b.offs) }

// Size returns the uncompressed size of the entries.
func (b *Block) Size() int { return len(b.data) }

// Codec returns the codec the block was stored with.
func (b *Block) Codec() BlockCodec { return b.codec }

// Entry returns entry i (0 <= i < Len). The slices point into the block and
// are valid until the block is decoded into again; do not modify them.
func (b *Block) Entry(i int) (key, value []byte, kind EntryKind) {
	e := b.entry(i)
	v := e.key + e.klen
	return b.data[e.key:v:v], b.data[v : v+e.vlen : v+e.vlen], e.kind
}

// Key returns the key of entry i, like Entry.
func (b *Block) Key(i int) []byte {
	k, _, _ := b.Entry(i)
	return k
}

// SeekGE returns the index of the first entry whose key is >= key, or Len()
// if there is none. It is a binary search over the entry offsets.
func (b *Block) SeekGE(key []byte) int {
	return sort.Search(len(b.offs), func(i int) bool { return bytes.Compare(b.Key(i), key) >= 0 })
}

// Iter returns an iterator positioned before the first entry.
func (b *Block) Iter() *BlockIter { return &BlockIter{b: b, next: 0} }

// BlockIter walks a decoded block in key order:
//
//	for it := b.Iter(); it.Next(); {
//		use(it.Key(), it.Value(), it.Kind())
//	}
//
// It cannot fail (DecodeBlock validated every entry), so it has no Err. The
// slices it returns are valid as long as the block's.
type BlockIter struct {
	b          *Block
	next       int // index of the entry the next call to Next moves to
	key, value []byte
	kind       EntryKind
}

// Next moves to the next entry and reports whether there is one.
func (it *BlockIter) Next() bool {
	if it.next >= it.b.Len() {
		it.key, it.value, it.kind = nil, nil, 0
		return false
	}
	it.key, it.value, it.kind = it.b.Entry(it.next)
	it.next++
	return true
}

// SeekGE positions the iterator so that the following Next moves to the
// first entry whose key is >= key.
func (it *BlockIter) SeekGE(key []byte) {
	it.next = it.b.SeekGE(key)
	it.key, it.value, it.kind = nil, nil, 0
}

// Key returns the current entry's key.
func (it *BlockIter) Key() []byte { return it.key }

// Value returns the current entry's value (empty for a delete).
func (it *BlockIter) Value() []byte { return it.value }

// Kind returns the current entry's kind.
func (it *BlockIter) Kind() EntryKind { return it.kind }
