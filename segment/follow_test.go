package segment

import (
	"fmt"
	"io"
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
