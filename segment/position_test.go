package segment

import (
	"bytes"
	"encoding/binary"
	"io"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// Position names the segment and the offset of the frame each entry was
// read from: decoding the frame found there gives the same entry.
func TestReaderPosition(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 4096))
	appendN(t, l, 200)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, from := range []uint64{1, 77} {
		r, err := NewReader(fs, testDir, from)
		if err != nil {
			t.Fatal(err)
		}
		segs := map[string]bool{}
		for i := from; i <= 200; i++ {
			e, err := r.Next()
			if err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
			path, off := r.Position()
			name := filepath.Base(path)
			segs[name] = true
			if first, ok := format.ParseSegmentName(name); !ok || first > e.Index {
				t.Fatalf("entry %d: segment %q", e.Index, name)
			}
			f, err := fs.Open(filepath.Join(testDir, name))
			if err != nil {
				t.Fatal(err)
			}
			fm, err := format.NewFrameReader(io.NewSectionReader(f, off, 1<<20), name, off, off+1<<20, false).Next()
			f.Close()
			p := fm.Payload
			if err != nil || binary.LittleEndian.Uint64(p) != e.Index || !bytes.Equal(p[recordHeaderSize:], e.Data) {
				t.Fatalf("entry %d: the frame at %s offset %d is not it (%v)", e.Index, name, off, err)
			}
		}
		r.Close()
		if len(segs) < 2 {
			t.Fatalf("read %d segments; the test wants several", len(segs))
		}
	}
}
