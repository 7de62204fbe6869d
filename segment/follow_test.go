package segment

import (
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// TestReaderFollow reads a live log to its end, appends more (within the
// same active segment, whose read-ahead held zeros where the new records
// now are, and across rotations), and checks that Follow continues with
// exactly the new entries, in order, without reopening.
func TestReaderFollow(t *testing.T) {
	for _, fsys := range []vfs.FS{vfs.NewMem(), vfs.Default} {
		dir := "/wal"
		if fsys == vfs.Default {
			dir = t.TempDir()
		}
		l, err := Open(Options{FS: fsys, Dir: dir, SegmentSize: 2 << 10})
		if err != nil {
			t.Fatal(err)
		}
		appendN := func(n int) {
			for i := 0; i < n; i++ {
				if _, err := l.Append(format.FrameWALTxn, []byte(fmt.Sprintf("rec-%04d", l.LastIndex()+1))); err != nil {
					t.Fatal(err)
				}
			}
		}
		appendN(5)
		r, err := l.NewReader(1)
		if err != nil {
			t.Fatal(err)
		}
		next := uint64(1)
		drain := func() {
			for {
				e, err := r.Next()
				if err == io.EOF {
					return
				} else if err != nil {
					t.Fatalf("entry %d: %v", next, err)
				}
				if e.Index != next || string(e.Data) != fmt.Sprintf("rec-%04d", next) {
					t.Fatalf("got entry %d %q, want %d", e.Index, e.Data, next)
				}
				next++
			}
		}
		for round := 0; round < 20; round++ {
			drain()
			appendN(round * 3) // zero appends in round 0: Follow with nothing new
			if round%7 == 6 {
				if err := l.Rotate(); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Follow(l.DurableIndex()); err != nil {
				t.Fatal(err)
			}
		}
		drain()
		if next != l.LastIndex()+1 {
			t.Fatalf("read up to %d, the log ends at %d", next-1, l.LastIndex())
		}
		r.Close()
		l.Close()
	}
}

// listCounter counts the directory listings of a file system.
type listCounter struct {
	vfs.FS
	lists atomic.Int64
}

func (c *listCounter) List(dir string) ([]string, error) {
	c.lists.Add(1)
	return c.FS.List(dir)
}

// TestReaderFollowListsOnlyAfterRotation: a reader of a live log follows
// new entries of the active segment without listing the directory, and
// lists it again (and reads on into the new segment) after a rotation.
func TestReaderFollowListsOnlyAfterRotation(t *testing.T) {
	fsys := &listCounter{FS: vfs.NewMem()}
	l, r := openFollowed(t, fsys, 1<<20)
	next := uint64(1)
	step := func(rotate bool) int64 {
		t.Helper()
		if rotate {
			if err := l.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Append(format.FrameWALTxn, []byte("x")); err != nil {
			t.Fatal(err)
		}
		before := fsys.lists.Load()
		if err := r.Follow(l.DurableIndex()); err != nil {
			t.Fatal(err)
		}
		next = readOn(t, r, next)
		if next != l.LastIndex()+1 {
			t.Fatalf("read to %d, the log ends at %d", next-1, l.LastIndex())
		}
		return fsys.lists.Load() - before
	}
	for i := 0; i < 10; i++ {
		if n := step(false); n != 0 {
			t.Fatalf("follow %d within the active segment listed the directory %d times", i, n)
		}
	}
	if n := step(true); n == 0 {
		t.Fatal("follow after a rotation did not list the directory")
	}
	if n := step(false); n != 0 {
		t.Fatalf("follow after the relisting listed the directory %d times", n)
	}
}

// readCounter counts the bytes read through ReadAt from the files it opens.
type readCounter struct {
	vfs.FS
	read atomic.Int64
}

func (c *readCounter) Open(name string) (vfs.File, error) {
	f, err := c.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return &countedFile{File: f, c: c}, nil
}

type countedFile struct {
	vfs.File
	c *readCounter
}

func (f *countedFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.c.read.Add(int64(n))
	return n, err
}

// TestReaderFollowReadsWhatIsNew: a reader that follows a live log after
// every fsync reads about the new records from the file, not a full
// read-ahead of the zeros after them (a transfer source follows its WAL
// after each of the store's group commits).
func TestReaderFollowReadsWhatIsNew(t *testing.T) {
	fsys := &readCounter{FS: vfs.NewMem()}
	l, r := openFollowed(t, fsys, 4<<20)
	next := uint64(1)
	for i := 0; i < 50; i++ {
		for j := 0; j < 3; j++ {
			if _, err := l.Append(format.FrameWALTxn, make([]byte, 200)); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Follow(l.DurableIndex()); err != nil {
			t.Fatal(err)
		}
		before := fsys.read.Load()
		next = readOn(t, r, next)
		if n := fsys.read.Load() - before; i > 0 && n > 16<<10 {
			t.Fatalf("follow %d read %d bytes from the segment for 3 new records of 200 bytes", i, n)
		}
	}
	if next != l.LastIndex()+1 {
		t.Fatalf("read to %d, the log ends at %d", next-1, l.LastIndex())
	}
}

// TestNewReaderStartsAtMark: a reader of the open log from an index in the
// middle of a large segment reads little more than a mark's spacing before
// it (not the segment from its start), and returns exactly the entries
// from that index on, from any index, across a rotation too.
func TestNewReaderStartsAtMark(t *testing.T) {
	fsys := &readCounter{FS: vfs.NewMem()}
	l, err := Open(Options{FS: fsys, Dir: "/wal", SegmentSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data := func(i uint64) []byte { return []byte(fmt.Sprintf("%0999d", i)) }
	appendN := func(n int) {
		for j := 0; j < n; j++ {
			if _, err := l.Append(format.FrameWALTxn, data(l.LastIndex()+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(3000) // about 3 MB, a mark every 256 KiB
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	appendN(600)
	last := l.LastIndex()
	for from := uint64(1); from <= last; from += 97 {
		before := fsys.read.Load()
		r, err := l.NewReader(from)
		if err != nil {
			t.Fatal(err)
		}
		e, err := r.Next()
		if err != nil || e.Index != from || string(e.Data) != string(data(from)) {
			t.Fatalf("reader from %d: first entry %d (%v)", from, e.Index, err)
		}
		if n := fsys.read.Load() - before; n > 4*markEvery { // a mark apart, and reads that double
			t.Fatalf("reader from %d read %d bytes to its first entry", from, n)
		}
		for next := from + 1; ; next++ {
			e, err := r.Next()
			if err == io.EOF && next == last+1 {
				break
			}
			if err != nil || e.Index != next || string(e.Data) != string(data(next)) {
				t.Fatalf("reader from %d: entry %d (%v), want %d", from, e.Index, err, next)
			}
		}
		r.Close()
	}
}

// openFollowed opens a log in /wal on fsys and a reader of it from index
// 1; both are closed when the test ends.
func openFollowed(t *testing.T, fsys vfs.FS, segSize int64) (*Log, *Reader) {
	t.Helper()
	l, err := Open(Options{FS: fsys, Dir: "/wal", SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r, err := l.NewReader(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return l, r
}

// readOn reads r to its end, checking that the entries go on from index
// next one by one, and returns the index after the last.
func readOn(t *testing.T, r *Reader, next uint64) uint64 {
	t.Helper()
	for {
		e, err := r.Next()
		if err == io.EOF {
			return next
		} else if err != nil {
			t.Fatal(err)
		}
		if e.Index != next {
			t.Fatalf("entry %d, want %d", e.Index, next)
		}
		next++
	}
}

// TestBytesAfter: what the records after an index take is never
// undercounted, and overcounted by at most a mark's spacing and a record,
// from any index, across a rotation, and after the log reopens (its
// segments then have no marks: each counts whole).
func TestBytesAfter(t *testing.T) {
	fs := vfs.NewMem()
	l, err := Open(Options{FS: fs, Dir: "/wal", SegmentSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	const rec = 1000 // payload bytes of each record
	appendN := func(n int) {
		for j := 0; j < n; j++ {
			if _, err := l.Append(format.FrameWALTxn, make([]byte, rec)); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(3000)
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	appendN(600)
	last := l.LastIndex()
	for after := uint64(0); after <= last; after += 97 {
		exact := int64(last-after) * rec // payloads only: framing adds to it
		got := l.BytesAfter(after)
		if got < exact || got > exact*11/10+2*markEvery+headerSize {
			t.Fatalf("BytesAfter(%d) = %d; the payloads after it take %d", after, got, exact)
		}
	}
	if got := l.BytesAfter(last); got != 0 {
		t.Fatalf("BytesAfter(last) = %d, want 0", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = Open(Options{FS: fs, Dir: "/wal", SegmentSize: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	segs := l.Segments()
	if got, want := l.BytesAfter(10), segs[0].Size+segs[1].Size; got != want {
		t.Fatalf("after a reopen BytesAfter(10) = %d, want both segments whole (%d)", got, want)
	}
}
