package store

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/vfs"
)

// TestReadOnlyTornTail checks that a read-only open of a directory whose WAL
// ends in a torn record reads everything before it, refuses commits, and
// leaves every byte of the directory as it was.
func TestReadOnlyTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Create: true, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := s.Put(context.Background(), k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Tear the last record: zero its last byte's neighbourhood by cutting
	// the record short and zeroing what follows.
	segs, _ := vfs.Default.List(filepath.Join(dir, format.WALDir))
	seg := filepath.Join(dir, format.WALDir, segs[len(segs)-1])
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	// The log ends with the clean-shutdown record (a marker frame whose
	// payload, the last index 3, has one nonzero byte): zero it, as a
	// crash leaves the log, then tear the record before it.
	clear(b[end-format.FrameHeaderSize-1 : end])
	for end > 0 && b[end-1] == 0 {
		end--
	}
	for i := end - 5; i < end; i++ {
		b[i] = 0
	}
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	before := dirtest.Snapshot(t, dir)

	ro, err := Open(Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := ro.Get("b"); !ok || string(v) != "v-b" {
		t.Errorf("get b = %q %v", v, ok)
	}
	if _, ok := ro.Get("c"); ok {
		t.Errorf("the torn record's key is visible")
	}
	if _, torn := ro.ReadOnly(); !torn {
		t.Errorf("ReadOnly() does not report the torn tail")
	}
	if _, err := ro.Put(context.Background(), "d", nil); !errors.Is(err, ErrReadOnly) {
		t.Errorf("put on a read-only store: %v", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	// The lock file is the one thing a read-only open may create.
	delete(before, filepath.Join(dir, format.LockName))
	after := dirtest.Snapshot(t, dir)
	delete(after, filepath.Join(dir, format.LockName))
	if !maps.Equal(before, after) {
		t.Fatalf("read-only open changed the directory:\nbefore %v\nafter  %v", before, after)
	}
}
