package table

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// Progress, if set, is called as the file is read with the bytes read so
	// far and the file size.
	Progress func(done, total int64)
	// Block, if set, is given every block that passed its own checks
	// (frame checksum, encoding, order after the block before, its index
	// entry), in file order, each decoded into a fresh Block the callee
	// may keep: a caller that loads the table next takes the blocks from
	// this pass instead of decoding the file twice. Whether the table as
	// a whole is sound (counts, hash, whole-file checksum) is known only
	// when Verify returns: what Block was given is good only if the
	// Report then holds no problem. An error from Block ends Verify and is
	// returned.
	Block func(b *format.Block) error
}

// Verify reads every byte of the table at path and checks everything that
// can be checked: the header, every block frame's checksum and encoding,
// key order across blocks, the index against the blocks found, the counts,
// the footer, the whole-file checksum and the recomputed hash. It keeps
// going after damage wherever it can find the next block (the index says
// where) and reports every problem in the Report. The error is for what
// stops verification itself: the file cannot be opened or read, or its
// version is unknown. Verify never writes.
func Verify(fs vfs.FS, path string, opts VerifyOptions) (*Report, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kvtool/table: %w", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("kvtool/table: %s: %w", path, err)
	}
	v := &verifier{f: f, path: path, size: size, opts: opts, hasher: newEntryHasher(),
		rep: &Report{Path: path, Size: size}}
	if err := v.run(); err != nil {
		return v.rep, err
	}
	return v.rep, nil
}

// verifier holds the state of one Verify.
type verifier struct {
	f         vfs.File
	path      string
	size      int64
	opts      VerifyOptions
	rep       *Report
	headerEnd int64 // where the first block starts; -1 if unknown
	ft        footer
	index     []indexEntry // the checked index, nil if it is damaged
	found     []bool       // index entries whose block was found intact
	sc        *scanner
	hasher    *entryHasher
	blk       format.Block
	prevLast  []byte
	hasPrev   bool
	lost      bool // a stretch of the file could not be walked
}

func (v *verifier) run() error {
	steps := []func() error{v.checkHeader, v.checkFooter, v.checkIndex, v.walk, v.finish}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (v *verifier) footerOff() int64 { return max(0, v.size-FooterSize) }

// checkHeader reads the header; when it is damaged it still guesses where
// the blocks start from its length field (the index may do better later).
func (v *verifier) checkHeader() error {
	v.headerEnd = -1
	hdr, err := readHeader(v.f, v.path, v.size)
	if hdr.Ext != nil {
		v.headerEnd = int64(format.HeaderSize(len(hdr.Ext)))
	}
	if err == nil {
		v.rep.Header, v.rep.HeaderOK = hdr, true
		return nil
	}
	ce := format.AsCorruption(err)
	if ce == nil {
		return err
	}
	v.rep.Addf(0, "file header: %s (at offset %d)", ce.Reason, ce.Offset)
	if v.headerEnd < 0 {
		v.headerEnd = v.guessHeaderEnd()
	}
	return nil
}

// guessHeaderEnd reads a damaged header's ext length field.
func (v *verifier) guessHeaderEnd() int64 {
	var b [4]byte
	if _, err := v.f.ReadAt(b[:], 12); err != nil {
		return -1
	}
	if n := binary.LittleEndian.Uint32(b[:]); n <= format.MaxHeaderExt {
		return int64(format.HeaderSize(int(n)))
	}
	return -1
}

// checkFooter reads and checks the footer.
func (v *verifier) checkFooter() error {
	minHeader := int64(format.HeaderSize(0))
	if v.size < minHeader+FooterSize {
		v.rep.Addf(0, "file of %d bytes is too short for a table", v.size)
		return nil
	}
	b := make([]byte, FooterSize)
	if err := readAt(v.f, v.path, b, v.footerOff(), "footer"); err != nil {
		return v.rep.addErr(err)
	}
	ft, err := parseFooter(b, v.path, v.footerOff())
	if err == nil {
		headerEnd := minHeader // a damaged header's length is only a guess
		if v.rep.HeaderOK {
			headerEnd = v.headerEnd
		}
		err = ft.check(v.path, v.footerOff(), headerEnd)
	}
	if err != nil {
		return v.rep.addErr(err)
	}
	v.ft, v.rep.FooterOK = ft, true
	v.rep.Footer = infoOf(v.path, v.rep.Header.Magic, v.rep.Header.Ext, v.size, ft)
	return nil
}

// checkIndex reads and checks the index the footer points to; a good
// index guides the walk past damaged blocks.
func (v *verifier) checkIndex() error {
	if !v.rep.FooterOK {
		return nil
	}
	region := make([]byte, v.ft.indexLen) // bounded by the file size (footer.check)
	if err := readAt(v.f, v.path, region, int64(v.ft.indexOff), "index"); err != nil {
		return v.rep.addErr(err)
	}
	entries, err := parseIndex(region, v.path, int64(v.ft.indexOff))
	if err != nil {
		return v.rep.addErr(err)
	}
	if !v.rep.HeaderOK {
		v.headerEnd = int64(v.ft.indexOff)
		if len(entries) > 0 {
			v.headerEnd = entries[0].off
		}
	}
	if err := checkIndex(entries, &v.ft, v.path, v.headerEnd); err != nil {
		return v.rep.addErr(err)
	}
	v.index, v.found = entries, make([]bool, len(entries))
	return nil
}

// walk reads the frames between the header and the footer in order.
func (v *verifier) walk() error {
	v.sc = newScanner(v.f, v.path, v.size, v.footerOff())
	if v.headerEnd < 0 {
		v.rep.Addf(0, "cannot locate the first block: header and index are damaged")
		v.lost = true
		return nil
	}
	end := v.footerOff()
	if v.rep.FooterOK {
		end = int64(v.ft.indexOff)
	}
	for cur := v.headerEnd; cur < end; {
		next, err := v.visit(cur, end)
		if err != nil {
			return err
		}
		if next < 0 {
			v.rep.Addf(cur, "cannot find the frame after offset %d: %d bytes unchecked", cur, end-cur)
			v.lost = true
			return nil
		}
		cur = next
		v.progress()
	}
	return nil
}

func (v *verifier) progress() {
	if v.opts.Progress != nil {
		v.opts.Progress(v.sc.pos, v.size)
	}
}

// visit checks the frame at cur (the data ends at end) and returns the
// offset of the next frame, or -1 if it cannot be found.
func (v *verifier) visit(cur, end int64) (int64, error) {
	if end-cur < format.FrameHeaderSize {
		v.rep.Addf(cur, "truncated frame header: %d bytes left", end-cur)
		return end, nil
	}
	b, err := v.sc.read(cur, format.FrameHeaderSize)
	if err != nil {
		return -1, v.rep.addErr(err)
	}
	var hdr [format.FrameHeaderSize]byte
	copy(hdr[:], b)
	h, err := format.ParseFrameHeader(hdr[:], v.path, cur, end-cur-format.FrameHeaderSize)
	if err != nil {
		return v.resync(cur, -1), v.rep.addErr(err)
	}
	next := cur + format.FrameHeaderSize + int64(h.Length)
	switch {
	case h.Type == format.FrameIndex && !v.rep.FooterOK:
		return end, v.walkIndex(cur, end)
	case h.Type != format.FrameBlock:
		v.rep.Addf(cur, "frame type %d where a block should be", h.Type)
		return v.resync(cur, next), nil
	}
	return v.visitBlock(hdr[:], cur, next)
}

// resync returns where the frame after the damaged one at cur starts: the
// next block the index knows, else the end the damaged frame's own length
// gives (next, -1 if unknown).
func (v *verifier) resync(cur, next int64) int64 {
	if v.index == nil {
		v.lost = v.lost || next < 0
		return next
	}
	i := sort.Search(len(v.index), func(i int) bool { return v.index[i].off > cur })
	if i == len(v.index) {
		return int64(v.ft.indexOff)
	}
	return v.index[i].off
}

// visitBlock checks the payload of the block frame whose header is hdr.
func (v *verifier) visitBlock(hdr []byte, cur, next int64) (int64, error) {
	payload, err := v.sc.read(cur+format.FrameHeaderSize, int(next-cur-format.FrameHeaderSize))
	if err != nil {
		return -1, v.rep.addErr(err)
	}
	if !format.VerifyFrame(hdr, payload) {
		v.rep.Addf(cur, "block checksum mismatch")
		v.rep.BadBlocks++
		return v.resync(cur, next), nil
	}
	if v.opts.Block != nil {
		v.blk = format.Block{} // handed over below: decode into a fresh one
	}
	if err := v.blk.Decode(payload, v.path, cur); err != nil {
		v.rep.BadBlocks++
		return next, v.rep.addErr(err)
	}
	problems := len(v.rep.Problems) + v.rep.Omitted
	v.checkBlock(cur, next-cur)
	if v.opts.Block != nil && len(v.rep.Problems)+v.rep.Omitted == problems {
		b := v.blk // its buffers are the callee's: the next block decodes into new ones
		if err := v.opts.Block(&b); err != nil {
			return -1, err
		}
	}
	return next, nil
}

// checkBlock checks an intact block against its neighbours and the index,
// and counts and hashes its entries.
func (v *verifier) checkBlock(off, length int64) {
	n := v.blk.Len()
	if n == 0 {
		v.rep.Addf(off, "empty block")
	} else if v.hasPrev && bytes.Compare(v.prevLast, v.blk.Key(0)) >= 0 {
		v.rep.Addf(off, "first key of the block is not after the last key of the block before")
	}
	v.matchIndex(off, length)
	for i := 0; i < n; i++ {
		k, val, kind := v.blk.Entry(i)
		v.hasher.add(k, val, kind)
		if kind == format.EntryPut {
			v.rep.Puts++
		} else {
			v.rep.Tombstones++
		}
	}
	if n > 0 {
		v.prevLast, v.hasPrev = append(v.prevLast[:0], v.blk.Key(n-1)...), true
	}
	v.rep.Blocks++
}

// matchIndex finds the index entry of the block at off and compares.
func (v *verifier) matchIndex(off, length int64) {
	if v.index == nil {
		return
	}
	i := sort.Search(len(v.index), func(i int) bool { return v.index[i].off >= off })
	if i == len(v.index) || v.index[i].off != off {
		v.rep.Addf(off, "block is not in the index")
		return
	}
	e := &v.index[i]
	v.found[i] = true
	if int64(e.length) != length {
		v.rep.Addf(off, "block frame is %d bytes, index says %d", length, e.length)
	} else if err := matchIndex(&v.blk, e, v.path); err != nil {
		v.rep.addErr(err)
	}
}

// walkIndex checks the index frames from cur to end, one at a time, when
// no footer points to them.
func (v *verifier) walkIndex(cur, end int64) error {
	for cur < end {
		if end-cur < format.FrameHeaderSize {
			v.rep.Addf(cur, "truncated index frame header: %d bytes left", end-cur)
			return nil
		}
		b, err := v.sc.read(cur, format.FrameHeaderSize)
		if err != nil {
			return v.rep.addErr(err)
		}
		h, err := format.ParseFrameHeader(b, v.path, cur, end-cur-format.FrameHeaderSize)
		if err != nil {
			return v.rep.addErr(err) // the next frame cannot be found
		}
		frame := make([]byte, format.FrameHeaderSize+int(h.Length))
		copy(frame, b)
		if b, err = v.sc.read(cur+format.FrameHeaderSize, int(h.Length)); err != nil {
			return v.rep.addErr(err)
		}
		copy(frame[format.FrameHeaderSize:], b)
		if _, err := parseIndex(frame, v.path, cur); err != nil {
			v.rep.addErr(err)
		}
		cur += int64(len(frame))
	}
	return nil
}

// finish compares what the walk found with the index and the footer.
func (v *verifier) finish() error {
	if err := v.sc.skipTo(v.footerOff()); err != nil {
		return v.rep.addErr(err)
	}
	v.rep.Checksum, v.rep.StateHash = v.sc.sum.Sum64(), v.hasher.sum()
	v.progress()
	v.unfoundBlocks()
	if !v.rep.FooterOK {
		return nil
	}
	if v.rep.Checksum != v.ft.checksum {
		v.rep.Addf(v.footerOff(), "whole-file checksum mismatch: footer says %016x, the bytes give %016x", v.ft.checksum, v.rep.Checksum)
	}
	if v.rep.BadBlocks == 0 && !v.lost {
		v.compareCounts()
	}
	return nil
}

// unfoundBlocks reports index entries whose block was not found intact and
// whose damage was not reported already.
func (v *verifier) unfoundBlocks() {
	for i, e := range v.index {
		if !v.found[i] && !v.rep.problemIn(e.off, e.off+int64(e.length)) {
			v.rep.Addf(e.at, "index entry %d names a block at offset %d that was not found", i, e.off)
		}
	}
}

// compareCounts checks the footer's counts and hash against the blocks.
func (v *verifier) compareCounts() {
	off, r := v.footerOff(), v.rep
	if uint64(r.Blocks) != v.ft.blocks {
		r.Addf(off, "footer says %d blocks, found %d", v.ft.blocks, r.Blocks)
	}
	if r.Puts != v.ft.puts || r.Tombstones != v.ft.tombstones {
		r.Addf(off, "footer says %d puts and %d tombstones, found %d and %d", v.ft.puts, v.ft.tombstones, r.Puts, r.Tombstones)
	}
	if r.StateHash != v.ft.hash {
		r.Addf(off, "footer hash %016x, the entries give %016x", v.ft.hash, r.StateHash)
	}
}
