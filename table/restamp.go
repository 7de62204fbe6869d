package table

import (
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/cespare/xxhash/v2"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// Restamp publishes at dst on fs (durably: temp file, fsync, rename, fsync
// of the directory) a copy of the table src on srcFS with its header
// metadata replaced by m: the blocks and the index are copied byte for byte, never
// decoded or compressed again, and only the header and the footer's
// whole-file checksum are written anew. m must encode to a header of the
// same size and imply the same footer fields (index, from index, term) as
// src's, so every offset in src stays right; otherwise Restamp returns an
// error and writes nothing. This is how a store adopts a table another
// store wrote (a replica installing a snapshot it received) under its own
// identity, at the cost of one sequential read and write.
//
// Restamp checks src's header, footer and whole-file checksum (as it
// copies), not each block: src must have been verified by the caller. A
// mismatch is a *format.CorruptionError naming src, and nothing is left
// at dst.
func (k *Kind[M, I]) Restamp(srcFS vfs.FS, src string, fs vfs.FS, dst string, m M) (I, error) {
	var zero I
	if err := k.Check(m); err != nil {
		return zero, fmt.Errorf("%w: %v", k.ErrBadMeta, err)
	}
	in, err := srcFS.Open(src)
	if err != nil {
		return zero, k.errorf(err)
	}
	defer in.Close()
	hdr, ft, err := readLayout(in, src)
	if err != nil {
		return zero, k.wrap(err)
	}
	old, err := k.metaOf(infoOf(src, hdr.Magic, hdr.Ext, 0, ft))
	if err != nil {
		return zero, err
	}
	if err := k.restampable(old, m, hdr); err != nil {
		return zero, fmt.Errorf("kvtool/%s: restamp %s: %w", k.Noun, src, err)
	}
	ext := k.AppendExt(nil, m)
	header := format.AppendHeader(nil, k.Magic, ext)
	bodyEnd := int64(ft.indexOff + ft.indexLen)
	out, tmp, err := format.CreateTemp(fs, dst, rand.Uint64())
	if err != nil {
		return zero, k.errorf(err)
	}
	ft.checksum, err = copyBody(out, in, src, header, bodyEnd, ft.checksum)
	if err == nil {
		_, err = out.Write(appendFooter(nil, ft))
	}
	if err == nil {
		err = format.PublishFile(fs, out, tmp, dst)
	} else {
		fs.Remove(tmp)
	}
	if cerr := out.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return zero, fmt.Errorf("kvtool/%s: restamp %s as %s: %w", k.Noun, src, dst, err)
	}
	info := infoOf(dst, k.Magic, ext, bodyEnd+FooterSize, ft)
	return k.describe(dst, info, m, nil), nil
}

// restampable says why src's metadata old (under header hdr) cannot be
// replaced by m in place.
func (k *Kind[M, I]) restampable(old, m M, hdr format.Header) error {
	if n := len(k.AppendExt(nil, m)); n != len(hdr.Ext) {
		return fmt.Errorf("the new header ext is %d bytes, the file's %d", n, len(hdr.Ext))
	}
	oi, of, ot := k.Footer(old)
	ni, nf, nt := k.Footer(m)
	if oi != ni || of != nf || ot != nt {
		return fmt.Errorf("the new metadata implies index %d, from %d, term %d; the file holds %d, %d, %d", ni, nf, nt, oi, of, ot)
	}
	return nil
}

// restampBuffer is the size of copyBody's reads and writes: io.Copy's
// 32 KiB made a joining member's restamp of a 23 MB checkpoint some 1,400
// system calls, most of its cost.
const restampBuffer = 1 << 20

// copyBody writes header, then in's bytes from the end of its header up to
// end, to out, and returns the xxh64 of everything it wrote. It checks on
// the way that in's own bytes up to end still sum to want (its footer's
// whole-file checksum), so damage done to src since it was verified is
// reported rather than sealed under a new checksum.
func copyBody(out io.Writer, in vfs.File, path string, header []byte, end int64, want uint64) (uint64, error) {
	sum, old := xxhash.New(), xxhash.New()
	start := int64(len(header))
	if _, err := io.Copy(old, io.NewSectionReader(in, 0, start)); err != nil {
		return 0, err
	}
	w := io.MultiWriter(out, sum, old)
	if _, err := sum.Write(header); err != nil {
		return 0, err
	}
	if _, err := out.Write(header); err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(w, io.NewSectionReader(in, start, end-start), make([]byte, restampBuffer))
	switch {
	case err != nil:
		return 0, err
	case n != end-start:
		return 0, format.Corruptf(path, start+n, "truncated: copied %d of %d bytes", n, end-start)
	case old.Sum64() != want:
		return 0, format.Corruptf(path, end, "the bytes before the footer sum to %016x, the footer says %016x", old.Sum64(), want)
	}
	return sum.Sum64(), nil
}
