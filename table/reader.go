package table

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// Reader reads a table. Open reads only the header, the footer and the
// index; Get and NewIter read and decode just the blocks they need. A
// Reader is safe for concurrent Get and NewIter calls.
type Reader struct {
	f     vfs.File
	path  string
	info  Info
	index []indexEntry
	bufs  sync.Pool // *blockBuf for Get
}

// blockBuf holds one block frame as read and its decoded block.
type blockBuf struct {
	raw []byte
	blk format.Block
}

// Open opens the table at path and reads its header, footer and index.
// Damage is a *format.CorruptionError naming path and offset; a header
// with an unknown version wraps format.ErrUnknownVersion.
func Open(fs vfs.FS, path string) (*Reader, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kvtool/table: %w", err)
	}
	r := &Reader{f: f, path: path}
	if err := r.load(); err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func (r *Reader) load() error {
	hdr, f, err := readLayout(r.f, r.path)
	if err != nil {
		return err
	}
	region := make([]byte, f.indexLen) // bounded by the file size (footer.check)
	if err := readAt(r.f, r.path, region, int64(f.indexOff), "index"); err != nil {
		return err
	}
	if r.index, err = parseIndex(region, r.path, int64(f.indexOff)); err != nil {
		return err
	}
	if err := checkIndex(r.index, &f, r.path, int64(format.HeaderSize(len(hdr.Ext)))); err != nil {
		return err
	}
	r.info = infoOf(r.path, hdr.Magic, hdr.Ext, int64(f.indexOff+f.indexLen)+FooterSize, f)
	return nil
}

// ReadInfo reads only the header and footer of the table at path: enough
// to list a directory without reading any index.
func ReadInfo(fs vfs.FS, path string) (Info, error) {
	f, err := fs.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("kvtool/table: %w", err)
	}
	defer f.Close()
	hdr, ft, err := readLayout(f, path)
	if err != nil {
		return Info{}, err
	}
	return infoOf(path, hdr.Magic, hdr.Ext, int64(ft.indexOff+ft.indexLen)+FooterSize, ft), nil
}

// readLayout reads and checks the header and the footer of a table file.
func readLayout(f vfs.File, path string) (format.Header, footer, error) {
	size, err := f.Size()
	if err != nil {
		return format.Header{}, footer{}, fmt.Errorf("kvtool/table: %s: %w", path, err)
	}
	hdr, err := readHeader(f, path, size)
	if err != nil {
		return hdr, footer{}, err
	}
	headerEnd := int64(format.HeaderSize(len(hdr.Ext)))
	if size < headerEnd+FooterSize {
		return hdr, footer{}, format.Corruptf(path, size, "file of %d bytes ends before its footer", size)
	}
	off := size - FooterSize
	b := make([]byte, FooterSize)
	if err := readAt(f, path, b, off, "footer"); err != nil {
		return hdr, footer{}, err
	}
	ft, err := parseFooter(b, path, off)
	if err != nil {
		return hdr, ft, err
	}
	return hdr, ft, ft.check(path, off, headerEnd)
}

// readHeader reads the file header and checks that it names a table kind.
func readHeader(f vfs.File, path string, size int64) (format.Header, error) {
	hdr, err := format.ReadHeader(io.NewSectionReader(f, 0, size), path, "")
	if err != nil {
		return hdr, err
	}
	if hdr.Magic != format.MagicCheckpoint && hdr.Magic != format.MagicDelta {
		return hdr, format.Corruptf(path, 0, "magic %q is not a checkpoint or delta", hdr.Magic)
	}
	return hdr, nil
}

// readAt fills b from offset off; running out of file is corruption.
func readAt(f vfs.File, path string, b []byte, off int64, what string) error {
	n, err := f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return format.Corruptf(path, off, "truncated %s: %d of %d bytes", what, n, len(b))
	}
	return fmt.Errorf("kvtool/table: %s: read %s at offset %d: %w", path, what, off, err)
}

// Info returns what the table's header and footer say.
func (r *Reader) Info() Info { return r.info }

// Path returns the path the table was opened at.
func (r *Reader) Path() string { return r.path }

// Close closes the file. Iterators must not be used afterwards.
func (r *Reader) Close() error { return r.f.Close() }

// Get looks key up, reading and decoding at most one block. found is false
// if the table has no entry for key; a tombstone is found with kind
// format.EntryDelete. value is the caller's to keep.
func (r *Reader) Get(key []byte) (value []byte, kind format.EntryKind, found bool, err error) {
	i := r.blockFor(key)
	if i < 0 {
		return nil, 0, false, nil
	}
	bb := r.getBuf()
	defer r.bufs.Put(bb)
	if err := r.loadBlock(i, bb); err != nil {
		return nil, 0, false, err
	}
	j := bb.blk.SeekGE(key)
	if j == bb.blk.Len() {
		return nil, 0, false, nil
	}
	k, v, kind := bb.blk.Entry(j)
	if !bytes.Equal(k, key) {
		return nil, 0, false, nil
	}
	return bytes.Clone(v), kind, true, nil
}

func (r *Reader) getBuf() *blockBuf {
	if bb, ok := r.bufs.Get().(*blockBuf); ok {
		return bb
	}
	return new(blockBuf)
}

// blockFor returns the block whose key range holds key, or -1 if key falls
// before the first block, between two blocks, or after the last.
func (r *Reader) blockFor(key []byte) int {
	i := sort.Search(len(r.index), func(i int) bool { return bytes.Compare(r.index[i].first, key) > 0 }) - 1
	if i < 0 || bytes.Compare(key, r.index[i].last) > 0 {
		return -1
	}
	return i
}

// loadBlock reads block i into bb and checks it against its index entry.
func (r *Reader) loadBlock(i int, bb *blockBuf) error {
	e := &r.index[i]
	if cap(bb.raw) < int(e.length) {
		bb.raw = make([]byte, e.length)
	}
	bb.raw = bb.raw[:e.length]
	if err := readAt(r.f, r.path, bb.raw, e.off, "block"); err != nil {
		return err
	}
	if err := decodeBlockFrame(bb.raw, &bb.blk, r.path, e.off); err != nil {
		return err
	}
	return matchIndex(&bb.blk, e, r.path)
}

// decodeBlockFrame checks the block frame b (the whole frame, at offset
// off) and decodes its block into blk.
func decodeBlockFrame(b []byte, blk *format.Block, path string, off int64) error {
	h, err := format.ParseFrameHeader(b, path, off, int64(len(b)-format.FrameHeaderSize))
	if err != nil {
		return err
	}
	if h.Type != format.FrameBlock || int(h.Length) != len(b)-format.FrameHeaderSize {
		return format.Corruptf(path, off, "frame type %d, length %d where a block of %d bytes should be", h.Type, h.Length, len(b)-format.FrameHeaderSize)
	}
	if !format.VerifyFrame(b, b[format.FrameHeaderSize:]) {
		return format.Corruptf(path, off, "block checksum mismatch")
	}
	return blk.Decode(b[format.FrameHeaderSize:], path, off)
}

// matchIndex checks a decoded block against its index entry.
func matchIndex(blk *format.Block, e *indexEntry, path string) error {
	n := blk.Len()
	switch {
	case n != int(e.count):
		return format.Corruptf(path, e.off, "block holds %d entries, index says %d", n, e.count)
	case !bytes.Equal(blk.Key(0), e.first) || !bytes.Equal(blk.Key(n-1), e.last):
		return format.Corruptf(path, e.off, "block keys do not match the index")
	}
	return nil
}
