package segment

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// Reader iterates the entries of a log directory in index order, across
// segments, from a given index on. It checks every frame, that indexes are
// contiguous within and across segments, that each segment's header links
// to its predecessor, and that the bytes after each segment's end of data are
// zero, so a stale or hidden record is never returned silently.
type Reader struct {
	fsys  vfs.FS
	dir   string
	names []string // segment names, oldest first
	tail  int      // index in names of the first segment that may end torn (see tailFrom)
	i     int      // index in names of the open segment
	seg   *segReader
	br    *bufio.Reader // read buffer, handed from segment to segment
	from  uint64
	limit uint64 // last index to return (a live log's durable index)
	err   error  // sticky: once set, Next returns it
	// pathAt and offAt locate the frame of the entry Next returned last.
	pathAt string
	offAt  int64
	// segGen is the log's segment generation (Log.segGen) for a reader
	// from Log.NewReader, nil otherwise; gen is its value when names was
	// listed.
	segGen *atomic.Uint64
	gen    uint64
	// start, if set (Log.NewReader), is where in the first segment it
	// opens to start reading instead of its first record.
	start *mark
}

// NewReader returns a Reader over the entries of dir with Index >= from. If
// the log starts after from (its older segments were dropped), the first
// entry is simply the log's first; a caller that needs exactly from checks
// the first Index. It returns an error only if dir cannot be listed; damage
// is reported by Next.
func NewReader(fsys vfs.FS, dir string, from uint64) (*Reader, error) {
	return newReader(fsys, dir, from, math.MaxUint64)
}

func newReader(fsys vfs.FS, dir string, from, limit uint64) (*Reader, error) {
	names, err := walNames(fsys, dir)
	if err != nil {
		return nil, err
	}
	tail, err := tailFrom(fsys, dir, names)
	if err != nil {
		return nil, err
	}
	r := &Reader{fsys: fsys, dir: dir, names: names, tail: tail, from: from, limit: limit}
	r.i = startSegment(names, from)
	return r, nil
}

// role is the role of the open segment (see segRole).
func (r *Reader) role() segRole {
	return segRole{last: r.i == len(r.names)-1, tornOK: r.i >= r.tail}
}

// startSegment returns the index of the newest segment whose first index is
// at most from (0 if there is none).
func startSegment(names []string, from uint64) int {
	i := 0
	for j, n := range names {
		if first, _ := format.ParseSegmentName(n); first <= from {
			i = j
		}
	}
	return i
}

// Next returns the next entry, or io.EOF at the clean end of the log.
// Entry.Data is valid until the next call. Errors are sticky. Damage is a
// *format.CorruptionError naming the file and offset; a torn tail of the
// newest segment also matches errors.Is(err, ErrTornTail), and an intact
// frame holding a wrong record ErrBadRecord. A lost end of
// the log is damage too: a newest segment that is sealed (the segment its
// seal names is missing) or shorter than it was preallocated.
func (r *Reader) Next() (Entry, error) {
	if r.err != nil {
		return Entry{}, r.err
	}
	e, err := r.next()
	if err != nil {
		r.err = err
	}
	return e, err
}

func (r *Reader) next() (Entry, error) {
	for {
		if r.seg == nil {
			if err := r.openNext(); err != nil {
				return Entry{}, err
			}
		}
		if r.seg.expect > r.limit {
			return Entry{}, io.EOF
		}
		e, err := r.seg.next()
		switch {
		case err == nil && e.Index < r.from:
			continue
		case err == nil:
			r.pathAt, r.offAt = r.seg.path, r.seg.at
			return e, nil
		case err == io.EOF:
			if err := r.endSegment(); err != nil {
				return Entry{}, err
			}
		case format.AsCorruption(err) != nil && !errors.Is(err, ErrBadRecord):
			return Entry{}, r.damagedFrame(r.seg.at, err)
		default:
			return Entry{}, err
		}
	}
}

// openNext opens names[r.i] and checks that it follows the segment before
// it. At the end of the list it returns io.EOF.
func (r *Reader) openNext() error {
	if r.i >= len(r.names) {
		return io.EOF
	}
	name := r.names[r.i]
	s, err := openSeg(r.fsys, filepath.Join(r.dir, name), name, r.br)
	if err != nil {
		return err
	}
	r.seg, r.br = s, s.br
	if m := r.start; m != nil {
		r.start = nil
		s.skipTo(*m)
	}
	return nil
}

// endSegment checks the end of the current segment (nothing but zeros after
// the end of data, a seal record where its place in the log wants one, no
// truncation of the newest) and moves to the next one, checking the link.
func (r *Reader) endSegment() error {
	s := r.seg
	t, err := scanTail(s.f, s.path, s.end, s.size, s.last())
	if err != nil {
		return err
	}
	role := r.role()
	if t.firstNonzero >= 0 {
		return r.tailDamage(t, s.end)
	}
	if err := r.checkShape(); err != nil {
		return err
	}
	if role.last {
		return io.EOF
	}
	prev, last, term := s.link(), s.last(), s.term
	s.close()
	r.seg = nil
	r.i++
	if err := r.openNext(); err != nil {
		return err
	}
	if _, err := checkLink(&r.seg.hdr, r.seg.path, prev, last); err != nil {
		return err
	}
	r.seg.term = max(r.seg.term, term)
	return nil
}

// checkShape is segResult.checkShape for the open segment, as an error:
// a sealed newest segment, a truncated one, an older one without a seal.
func (r *Reader) checkShape() error {
	s, role := r.seg, r.role()
	if err := r.truncated(); err != nil {
		return err
	}
	switch {
	case s.sealAt >= 0 && role.last:
		return format.Corruptf(s.path, s.sealAt, "gap: the segment is sealed and its seal record names %s as the next segment, which is missing: the log's entries from index %d on are gone",
			format.SegmentName(s.sealNext), s.sealNext)
	case s.sealAt < 0 && !role.tornOK && s.prealloc > 0:
		return format.Corruptf(s.path, s.end, "the segment ends at index %d without the seal record that every rotation writes: its end was cut off or zeroed", s.last())
	}
	return nil
}

// truncated is the error for a newest segment shorter than it was
// preallocated, or nil.
func (r *Reader) truncated() error {
	s := r.seg
	if !r.role().last || s.sealAt >= 0 || s.prealloc == 0 || s.size >= s.prealloc {
		return nil
	}
	return format.Corruptf(s.path, s.size, "truncated: the file is %d bytes, shorter than the %d it was preallocated to, and any entries after index %d are gone",
		s.size, s.prealloc, s.last())
}

// tailDamage is the error for nonzero bytes after the end of data at eod.
func (r *Reader) tailDamage(t tail, eod int64) error {
	s := r.seg
	if t.validAt >= 0 {
		return format.Corruptf(s.path, eod, "zeroed frame header at the end of data hides an intact frame (index %d) at offset %d", t.validIndex, t.validAt)
	}
	if err := r.truncated(); err != nil {
		return err
	}
	ce := format.Corruptf(s.path, t.firstNonzero, "nonzero bytes after the end of data at offset %d", eod)
	if r.role().tornOK {
		return fmt.Errorf("%w: %w", ErrTornTail, ce)
	}
	return ce
}

// damagedFrame classifies the damaged frame at off (err): a torn tail if
// the segment may end torn, no intact frame follows it and it is what a
// torn write leaves (see tornFrame), otherwise corruption.
func (r *Reader) damagedFrame(off int64, err error) error {
	s := r.seg
	if !r.role().tornOK {
		return err
	}
	t, terr := scanTail(s.f, s.path, off+1, s.size, s.last())
	if terr != nil {
		return terr
	}
	ce := format.AsCorruption(err)
	if t.validAt >= 0 {
		return format.Corruptf(ce.Path, ce.Offset, "%s (an intact frame, index %d, follows at offset %d)", ce.Reason, t.validIndex, t.validAt)
	}
	if err := r.truncated(); err != nil {
		return err
	}
	torn, terr := tornFrame(s.f, s.path, off, s.size)
	switch {
	case terr != nil:
		return terr
	case !torn:
		return format.Corruptf(ce.Path, ce.Offset, "%s (every byte of the frame is there, so it was damaged after it was written: not a torn write)", ce.Reason)
	}
	return fmt.Errorf("%w: %w", ErrTornTail, err)
}

// Position returns the segment file and the byte offset of the frame of
// the entry Next returned last ("" and 0 before the first).
func (r *Reader) Position() (path string, offset int64) { return r.pathAt, r.offAt }

// Follow lets a reader of a live log (Log.NewReader) go on past the limit
// it stopped at: it raises the limit to limit (pass the log's durable index,
// never more), forgets the io.EOF it returned, and picks up segments created
// since. The open segment is read again from just after the last entry
// returned, dropping read-ahead that may hold bytes written since. Entries
// are checked as before. It returns the reader's error if it failed with
// anything but io.EOF. A reader from Log.NewReader lists the directory
// again only when the log rotated or dropped a segment since it last did:
// a follower calls Follow after every fsync, and the listing and the check
// of the newest segment were most of a transfer sender's CPU.
func (r *Reader) Follow(limit uint64) error {
	if r.err != nil && r.err != io.EOF {
		return r.err
	}
	r.err, r.limit = nil, max(r.limit, limit)
	if r.segGen == nil || r.segGen.Load() != r.gen {
		if err := r.relist(); err != nil {
			return err
		}
	}
	if s := r.seg; s != nil {
		size, err := s.f.Size()
		if err != nil {
			return fmt.Errorf("kvtool/segment: size of %s: %w", s.path, err)
		}
		off := s.end
		if off == 0 {
			off = headerSize
		}
		s.size = size
		s.seek(off, s.expect)
	}
	return nil
}

// relist lists the segments again for Follow, keeping the open one.
func (r *Reader) relist() error {
	if r.segGen != nil {
		r.gen = r.segGen.Load() // before the listing, as in Log.NewReader
	}
	names, err := walNames(r.fsys, r.dir)
	if err != nil {
		return err
	}
	if r.i < len(r.names) {
		cur := r.names[r.i]
		i := slices.Index(names, cur)
		if i < 0 {
			return fmt.Errorf("kvtool/segment: %s was removed while being read", filepath.Join(r.dir, cur))
		}
		r.i = i
	}
	r.names = names
	r.tail, err = tailFrom(r.fsys, r.dir, names)
	return err
}

// Close releases the open file. It is safe to call more than once.
func (r *Reader) Close() error {
	if r.err == nil {
		r.err = errReaderClosed
	}
	if r.seg == nil {
		return nil
	}
	err := r.seg.close()
	r.seg = nil
	return err
}

var errReaderClosed = errors.New("kvtool/segment: reader is closed")
