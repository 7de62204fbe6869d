package table

import (
	"bufio"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// scanner reads a file front to back for Verify, so every byte is read
// once, and adds every byte before hashEnd to the whole-file checksum as it
// passes.
type scanner struct {
	f       vfs.File
	path    string
	r       *bufio.Reader
	pos     int64 // offset of the next byte r returns
	hashEnd int64 // bytes before this offset are checksummed
	sum     *xxhash.Digest
	buf     []byte
}

func newScanner(f vfs.File, path string, size, hashEnd int64) *scanner {
	return &scanner{
		f: f, path: path,
		r:       bufio.NewReaderSize(io.NewSectionReader(f, 0, size), writeBufferSize),
		hashEnd: hashEnd,
		sum:     xxhash.New(),
	}
}

// hash adds the part of p (read at offset at) before hashEnd to the sum.
func (s *scanner) hash(p []byte, at int64) {
	if n := s.hashEnd - at; n > 0 {
		s.sum.Write(p[:min(int64(len(p)), n)])
	}
}

// skipTo reads (and checksums) the bytes up to off.
func (s *scanner) skipTo(off int64) error {
	for s.pos < off {
		b, err := s.r.Peek(int(min(off-s.pos, int64(s.r.Size()))))
		s.hash(b, s.pos)
		s.r.Discard(len(b))
		s.pos += int64(len(b))
		if err != nil {
			return s.fail(err, "data")
		}
	}
	return nil
}

// read returns the n bytes at offset off, valid until the next read. off
// must not be behind the bytes already read, except that a backward read
// (only a lying index could ask for one) is served by ReadAt unchecksummed.
func (s *scanner) read(off int64, n int) ([]byte, error) {
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	b := s.buf[:n]
	if off < s.pos {
		return b, readAt(s.f, s.path, b, off, "frame")
	}
	if err := s.skipTo(off); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(s.r, b); err != nil {
		return nil, s.fail(err, "frame")
	}
	s.hash(b, off)
	s.pos += int64(n)
	return b, nil
}

func (s *scanner) fail(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return format.Corruptf(s.path, s.pos, "truncated %s", what)
	}
	return fmt.Errorf("kvtool/table: %s: read at offset %d: %w", s.path, s.pos, err)
}
