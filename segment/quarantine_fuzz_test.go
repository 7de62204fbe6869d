package segment

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// quarantineFile writes data at off of a source file and quarantines it,
// returning the quarantine file's bytes.
func quarantineFile(t testing.TB, source string, off int64, data []byte) []byte {
	fsys := vfs.NewMem()
	src, err := fsys.Create("/" + source)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := writeQuarantine(fsys, "/q", source, src, off, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	f, err := fsys.Open("/q")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Size()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzReadQuarantine: a quarantine file never panics the reader, damage is
// corruption (or an unknown version), and what reads back is written again
// to a file that reads back the same.
func FuzzReadQuarantine(f *testing.F) {
	f.Add(quarantineFile(f, format.SegmentName(1), 216, []byte("torn bytes")))
	f.Add(quarantineFile(f, format.SegmentName(9), 0, nil))
	f.Add([]byte(format.MagicQuarantine))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := vfs.NewMem()
		if err := format.WriteFileAtomic(fsys, "/in", data); err != nil {
			t.Fatal(err)
		}
		q, err := ReadQuarantine(fsys, "/in")
		if err != nil {
			if !errors.Is(err, format.ErrCorruption) && !errors.Is(err, format.ErrUnknownVersion) {
				t.Fatalf("error is neither corruption nor an unknown version: %v", err)
			}
			return
		}
		if q.Offset < 0 || q.Offset > 1<<20 || len(q.Source) == 0 {
			return // re-encoding would need a huge or unnamed source file
		}
		again := quarantineFile(t, q.Source, q.Offset, q.Data)
		if err := format.WriteFileAtomic(fsys, "/again", again); err != nil {
			t.Fatal(err)
		}
		q2, err := ReadQuarantine(fsys, "/again")
		if err != nil || q2.Source != q.Source || q2.Offset != q.Offset || !bytes.Equal(q2.Data, q.Data) {
			t.Fatalf("re-written quarantine reads back %+v, %v; want %+v", q2, err, q)
		}
	})
}
