package segment

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// FuzzReadTruncateIntent: a truncate intent file never panics its reader,
// damage is a *format.CorruptionError naming the file and an offset inside
// it, and an intent that reads back is exactly what writeTruncateIntent
// writes for its index.
func FuzzReadTruncateIntent(f *testing.F) {
	good := appendTruncateIntent(nil, 41)
	f.Add(good)
	f.Add(good[:15])
	f.Add(append(bytes.Clone(good), 0))
	f.Add([]byte{})
	flipped := bytes.Clone(good)
	flipped[3] ^= 1
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := vfs.NewMem()
		path := filepath.Join("/wal", TruncateMarkerName)
		if err := format.MkdirAllDurable(fsys, "/wal"); err != nil {
			t.Fatal(err)
		}
		if err := format.WriteFileAtomic(fsys, path, data); err != nil {
			t.Fatal(err)
		}
		last, ok, err := ReadTruncateIntent(fsys, "/wal")
		if err != nil {
			ce := format.AsCorruption(err)
			if ce == nil || ce.Path != path || ce.Offset < 0 || ce.Offset > int64(len(data)) {
				t.Fatalf("damage is not a *format.CorruptionError inside %s: %v", path, err)
			}
			if ok {
				t.Fatal("a damaged intent reads as found")
			}
			return
		}
		if !ok {
			t.Fatal("an existing intent reads as absent")
		}
		if err := format.MkdirAllDurable(fsys, "/again"); err != nil {
			t.Fatal(err)
		}
		if err := writeTruncateIntent(fsys, "/again", last); err != nil {
			t.Fatal(err)
		}
		if again := readFile(t, fsys, filepath.Join("/again", TruncateMarkerName)); !bytes.Equal(again, data) {
			t.Fatalf("intent for index %d re-written as %x, read from %x", last, again, data)
		}
	})
}
