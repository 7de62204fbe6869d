package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// frameSpan is where one frame of a segment lies.
type frameSpan struct{ start, end int64 }

// allFrames returns every frame of the segment at path, markers included,
// in order, and its end of data.
func allFrames(t testing.TB, fs vfs.FS, path string) ([]frameSpan, int64) {
	t.Helper()
	s, err := openSeg(fs, path, filepath.Base(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var out []frameSpan
	for {
		f, err := s.fr.Next()
		if err == io.EOF {
			return out, s.fr.Offset()
		} else if err != nil {
			t.Fatal(err)
		}
		out = append(out, frameSpan{f.Offset, s.fr.Offset()})
	}
}

// frames returns the record frames of the segment at path, in order, and
// its end of data.
func frames(t testing.TB, fs vfs.FS, path string) ([]frameSpan, int64) {
	t.Helper()
	s, err := openSeg(fs, path, filepath.Base(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var out []frameSpan
	for {
		_, err := s.next()
		if err == io.EOF {
			return out, s.end
		} else if err != nil {
			t.Fatal(err)
		}
		out = append(out, frameSpan{s.at, s.end})
	}
}

// smallLog writes a sealed segment of 3 records and an active one of 3,
// preallocated to 512 bytes.
func smallLog(t testing.TB) *vfs.MemFS {
	t.Helper()
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 512))
	for i := range 6 {
		if i == 3 {
			if err := l.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Append(entryType(uint64(i)), fmt.Appendf(nil, "record %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// wantOffset is the offset Verify must report for damage at byte b of a
// segment with the given frames and end of data.
func wantOffset(b int64, fr []frameSpan, eod int64) (lo, hi int64) {
	if b < headerSize {
		return 0, headerSize - 1 // somewhere in the header
	}
	for _, f := range fr {
		if b >= f.start && b < f.end {
			return f.start, f.start
		}
	}
	if b < eod+format.FrameHeaderSize {
		return eod, eod // the zeroed frame header that ends the data
	}
	return b, b
}

// TestFlipEveryByte flips each byte of each segment in turn (each in a
// fresh copy): Verify must report a problem at the damaged header, frame or
// byte, and the Reader must fail with a *format.CorruptionError.
func TestFlipEveryByte(t *testing.T) {
	base := smallLog(t)
	for _, first := range []uint64{1, 4} {
		path := segPath(first)
		orig := readFile(t, base, path)
		fr, eod := allFrames(t, base, path)
		newest := first == 4
		for b := range int64(len(orig)) {
			fs := copyFS(t, base, testDir)
			damaged := append([]byte(nil), orig...)
			damaged[b] ^= 0xff
			writeFile(t, fs, path, damaged)
			checkFlip(t, fs, path, b, fr, eod, newest)
		}
		t.Logf("%s: %d bytes flipped, %d frames, end of data %d", filepath.Base(path), len(orig), len(fr), eod)
	}
}

func checkFlip(t *testing.T, fs vfs.FS, path string, b int64, fr []frameSpan, eod int64, newest bool) {
	t.Helper()
	rep, err := Verify(fs, testDir, VerifyOptions{})
	if err != nil {
		t.Fatalf("flip at %d: Verify: %v", b, err)
	}
	lo, hi := wantOffset(b, fr, eod)
	var found *Problem
	for i, p := range rep.Problems {
		if p.Path == path && p.Offset >= lo && p.Offset <= hi {
			found = &rep.Problems[i]
			break
		}
	}
	if found == nil {
		t.Fatalf("flip at %d of %s: no problem at offset %d..%d; got:\n%s", b, filepath.Base(path), lo, hi, problemsString(rep.Problems))
	}
	if found.Kind == TornTail && !newest {
		t.Fatalf("flip at %d: torn tail in a sealed segment: %s", b, found)
	}
	if _, err := readAll(fs, testDir, 0); !isCorruption(err) {
		t.Fatalf("flip at %d: Reader: %v, want a *format.CorruptionError", b, err)
	}
}

// damage applies f to the bytes of the segment at path.
func damage(t testing.TB, fs vfs.FS, path string, f func([]byte) []byte) {
	t.Helper()
	writeFile(t, fs, path, f(readFile(t, fs, path)))
}

func onlyProblem(t testing.TB, fs vfs.FS, kind ProblemKind, off int64) Problem {
	t.Helper()
	rep, err := Verify(fs, testDir, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != kind || rep.Problems[0].Offset != off {
		t.Fatalf("want one %s at offset %d, got:\n%s", kind, off, problemsString(rep.Problems))
	}
	return rep.Problems[0]
}

func TestGarbageAfterEndOfSealedSegment(t *testing.T) {
	fs := smallLog(t)
	size := int64(len(readFile(t, fs, segPath(1))))
	damage(t, fs, segPath(1), func(b []byte) []byte {
		return append(b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7)
	})
	onlyProblem(t, fs, Garbage, size+20)
	if _, err := Repair(fs, testDir, RepairOptions{}); !errors.Is(err, ErrNeedsForce) {
		t.Fatalf("Repair: %v", err)
	}
}

func TestPreallocatedSealedSegmentIsClean(t *testing.T) {
	fs := smallLog(t) // a crash can leave a sealed segment untrimmed: zeros are fine
	damage(t, fs, segPath(1), func(b []byte) []byte { return append(b, make([]byte, 1000)...) })
	if rep, _ := Verify(fs, testDir, VerifyOptions{}); !rep.OK() {
		t.Fatal(problemsString(rep.Problems))
	}
}

func TestBadFrameBeforeValidInNewestIsCorruption(t *testing.T) {
	fs := smallLog(t)
	fr, _ := frames(t, fs, segPath(4))
	damage(t, fs, segPath(4), func(b []byte) []byte { b[fr[1].start+20]++; return b })
	p := onlyProblem(t, fs, Corruption, fr[1].start)
	if _, err := Open(memOpts(fs, 512)); errors.Is(err, ErrTornTail) || !isCorruption(err) {
		t.Fatalf("Open: %v", err)
	}
	opts := memOpts(fs, 512)
	opts.RepairTail = true
	if _, err := Open(opts); err == nil {
		t.Fatalf("Open with RepairTail cut corruption: %s", p)
	}
	if _, err := readAll(fs, testDir, 0); errors.Is(err, ErrTornTail) || !isCorruption(err) {
		t.Fatalf("Reader: %v", err)
	}
}

func TestZeroedFrameHidingRecordsIsCorruption(t *testing.T) {
	fs := smallLog(t)
	fr, _ := frames(t, fs, segPath(4))
	damage(t, fs, segPath(4), func(b []byte) []byte {
		clear(b[fr[1].start:fr[1].end])
		return b
	})
	onlyProblem(t, fs, Corruption, fr[1].start)
	if _, err := readAll(fs, testDir, 0); errors.Is(err, ErrTornTail) || !isCorruption(err) {
		t.Fatalf("Reader: %v", err)
	}
}

// TestTruncatedNewestIsReported: a newest segment cut short inside its
// last record looks torn, but a crash never leaves the newest segment
// shorter than its preallocation: it is reported as truncated, and neither
// Open (even with RepairTail) nor the Reader takes it for a torn tail.
func TestTruncatedNewestIsReported(t *testing.T) {
	fs := smallLog(t)
	fr, _ := frames(t, fs, segPath(4))
	last := fr[len(fr)-1]
	damage(t, fs, segPath(4), func(b []byte) []byte { return b[:last.start+10] })
	rep, _ := Verify(fs, testDir, VerifyOptions{})
	if len(rep.Problems) != 2 || rep.Problems[0].Kind != TornTail || rep.Problems[1].Kind != Truncated || rep.Problems[1].Offset != last.start+10 {
		t.Fatalf("got:\n%s", problemsString(rep.Problems))
	}
	opts := memOpts(fs, 512)
	opts.RepairTail = true
	if _, err := Open(opts); errors.Is(err, ErrTornTail) || !isCorruption(err) {
		t.Fatalf("Open: %v", err)
	}
	es, err := readAll(fs, testDir, 0)
	if errors.Is(err, ErrTornTail) || !isCorruption(err) || len(es) != 5 {
		t.Fatalf("Reader: %d entries, %v", len(es), err)
	}
}

func TestTruncatedSealedIsCorruption(t *testing.T) {
	fs := smallLog(t)
	fr, _ := frames(t, fs, segPath(1))
	last := fr[len(fr)-1]
	damage(t, fs, segPath(1), func(b []byte) []byte { return b[:last.start+10] })
	rep, _ := Verify(fs, testDir, VerifyOptions{})
	if len(rep.Problems) != 2 || rep.Problems[0].Kind != Corruption || rep.Problems[0].Offset != last.start || rep.Problems[1].Kind != Gap {
		t.Fatalf("got:\n%s", problemsString(rep.Problems))
	}
}

func TestMissingMiddleSegmentIsGap(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 512))
	appendN(t, l, 40)
	segs := l.Segments()
	l.Close()
	mid := segs[len(segs)/2]
	if err := fs.Remove(mid.Path); err != nil {
		t.Fatal(err)
	}
	next := segs[len(segs)/2+1]
	onlyProblem(t, fs, Gap, 0)
	if _, err := Open(memOpts(fs, 512)); err == nil {
		t.Fatal("Open accepted a log with a missing segment")
	}
	es, err := readAll(fs, testDir, 0)
	if ce := format.AsCorruption(err); ce == nil || ce.Path != next.Path || uint64(len(es)) != mid.FirstIndex-1 {
		t.Fatalf("Reader: %d entries, %v", len(es), err)
	}
}

func TestReplacedSegmentBreaksChain(t *testing.T) {
	// Two logs with the same records but different store IDs: a segment of
	// one put in place of the other's is caught by the header chain.
	mk := func(id byte) *vfs.MemFS {
		fs := vfs.NewMem()
		opts := memOpts(fs, 512)
		opts.StoreID[0] = id
		l := mustOpen(t, opts)
		appendN(t, l, 40)
		l.Close()
		return fs
	}
	ours, theirs := mk(1), mk(2)
	segs, _ := List(ours, testDir)
	mid := segs[len(segs)/2]
	writeFile(t, ours, mid.Path, readFile(t, theirs, mid.Path))
	rep, _ := Verify(ours, testDir, VerifyOptions{})
	if len(rep.Problems) != 2 || rep.Problems[0].Kind != ChainBreak || rep.Problems[0].Path != mid.Path ||
		rep.Problems[1].Kind != ChainBreak || rep.Problems[1].Path != segs[len(segs)/2+1].Path {
		t.Fatalf("got:\n%s", problemsString(rep.Problems))
	}
	if _, err := readAll(ours, testDir, 0); !isCorruption(err) {
		t.Fatalf("Reader: %v", err)
	}
	opts := memOpts(ours, 512)
	opts.StoreID[0] = 1
	if _, err := Open(opts); !errors.Is(err, ErrStoreMismatch) {
		t.Fatalf("Open: %v", err)
	}
}

func TestSwappedSegmentNames(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 512))
	appendN(t, l, 40)
	segs := l.Segments()
	l.Close()
	a, b := segs[1], segs[2]
	ab, bb := readFile(t, fs, a.Path), readFile(t, fs, b.Path)
	writeFile(t, fs, a.Path, bb)
	writeFile(t, fs, b.Path, ab)
	rep, _ := Verify(fs, testDir, VerifyOptions{})
	if len(rep.Problems) < 2 || rep.Problems[0].Path != a.Path || rep.Problems[1].Path != b.Path {
		t.Fatalf("got:\n%s", problemsString(rep.Problems))
	}
	if _, err := Open(memOpts(fs, 512)); !isCorruption(err) {
		t.Fatalf("Open: %v", err)
	}
}

func TestVerifyProgressAndReadOnly(t *testing.T) {
	fs := smallLog(t)
	before := snapshot(t, fs, testDir)
	var calls, last, total int64
	_, err := Verify(fs, testDir, VerifyOptions{Progress: func(d, t int64) { calls++; last, total = d, t }})
	if err != nil || calls != 2 || last != total || total == 0 {
		t.Fatalf("progress: %d calls, %d/%d, %v", calls, last, total, err)
	}
	after := snapshot(t, fs, testDir)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatal("Verify changed the directory")
	}
}

// TestReaderClassifiesDamage checks that Reader.Next says what damage it
// met by typed errors alone: an intact frame holding a record out of order
// is ErrBadRecord, a torn write at the end of the newest segment is
// ErrTornTail, and both are a *format.CorruptionError at the frame.
func TestReaderClassifiesDamage(t *testing.T) {
	t.Run("bad record", func(t *testing.T) {
		fs := smallLog(t)
		fr, _ := frames(t, fs, segPath(4))
		at := fr[1].start // record 5, rewritten intact as record 9
		damage(t, fs, segPath(4), func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[at+format.FrameHeaderSize:], 9)
			format.FinishFrame(b[:fr[1].end], int(at))
			return b
		})
		_, err := readAll(fs, testDir, 0)
		checkDamage(t, err, at, ErrBadRecord, ErrTornTail)
		if ce := format.AsCorruption(err); err.Error() != ce.Error() {
			t.Fatalf("message %q, want the corruption's own %q", err, ce)
		}
	})
	t.Run("torn tail", func(t *testing.T) {
		fs := smallLog(t)
		fr, eod := frames(t, fs, segPath(4))
		at := fr[len(fr)-1].start // the last record, cut by a crash with what follows
		damage(t, fs, segPath(4), func(b []byte) []byte {
			clear(b[at+format.FrameHeaderSize+4 : eod+format.FrameHeaderSize])
			return b
		})
		_, err := readAll(fs, testDir, 0)
		checkDamage(t, err, at, ErrTornTail, ErrBadRecord)
	})
}

// checkDamage checks that err is corruption at off that matches is and
// not isNot.
func checkDamage(t *testing.T, err error, off int64, is, isNot error) {
	t.Helper()
	ce := format.AsCorruption(err)
	switch {
	case ce == nil || !errors.Is(err, format.ErrCorruption):
		t.Fatalf("Reader: %v, want a *format.CorruptionError", err)
	case ce.Offset != off:
		t.Fatalf("Reader: %v, want the damage at offset %d", err, off)
	case !errors.Is(err, is) || errors.Is(err, isNot):
		t.Fatalf("Reader: %v, want it to match %q and not %q", err, is, isNot)
	}
}
