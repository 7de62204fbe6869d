package datadir_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// smallStore writes 100 puts to a new store with 4 KiB segments, closes it
// and returns its directory and its WAL segments.
func smallStore(t *testing.T) (string, []segment.SegmentInfo) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	st, err := store.Open(store.Options{Dir: dir, Create: true, Shards: 2, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := st.Put(context.Background(), fmt.Sprintf("key:%03d", i), []byte(fmt.Sprintf("value %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := segment.List(vfs.Default, filepath.Join(dir, format.WALDir))
	if err != nil || len(segs) < 2 {
		t.Fatalf("%d segments, %v", len(segs), err)
	}
	return dir, segs
}

// changeFile applies f to the bytes of path.
func changeFile(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

// closeRecord is the size of the clean-shutdown record that ends a closed
// log's data.
const closeRecord = format.FrameHeaderSize + 8

// TestVerifyClaimsOnlyWhatRecoveryReaches loses the end of the WAL in the
// ways the review did: Verify reports a fault and claims no recovery
// index, and the store refuses to open, naming the file. A torn tail
// (which a crash leaves) is a fault too, but the store cuts it, and the
// index Verify claims is exactly the one the store reaches.
func TestVerifyClaimsOnlyWhatRecoveryReaches(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, newest, prev segment.SegmentInfo) string // returns the file to be named
	}{
		{"newest segment deleted", func(t *testing.T, newest, prev segment.SegmentInfo) string {
			if err := os.Remove(newest.Path); err != nil {
				t.Fatal(err)
			}
			return prev.Path
		}},
		{"newest segment truncated", func(t *testing.T, newest, prev segment.SegmentInfo) string {
			if err := os.Truncate(newest.Path, newest.Size-closeRecord); err != nil {
				t.Fatal(err)
			}
			return newest.Path
		}},
		{"last record damaged after a kill", func(t *testing.T, newest, prev segment.SegmentInfo) string {
			changeFile(t, newest.Path, func(b []byte) []byte {
				clear(b[newest.Size-closeRecord : newest.Size]) // killed: no clean-shutdown record
				b[newest.Size-closeRecord-1] ^= 0x01            // and one flipped byte in the last record
				return b
			})
			return newest.Path
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, segs := smallStore(t)
			path := c.damage(t, segs[len(segs)-1], segs[len(segs)-2])
			rep, err := datadir.Verify(vfs.Default, dir, datadir.VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || rep.AppliedIndex != 0 {
				t.Fatalf("Verify: %d faults, claims recovery reaches index %d:\n%v", rep.Faults, rep.AppliedIndex, rep.Problems())
			}
			st, err := store.Open(store.Options{Dir: dir})
			if err == nil {
				st.Close()
				t.Fatalf("the store opened at index %d", st.Snapshot().Index())
			}
			if !strings.Contains(err.Error(), path) || format.AsCorruption(err) == nil {
				t.Fatalf("store.Open: %v; want corruption naming %s", err, path)
			}
		})
	}
	t.Run("torn tail", func(t *testing.T) {
		dir, segs := smallStore(t)
		newest := segs[len(segs)-1]
		changeFile(t, newest.Path, func(b []byte) []byte { clear(b[newest.Size-closeRecord-5 : newest.Size]); return b })
		rep, err := datadir.Verify(vfs.Default, dir, datadir.VerifyOptions{})
		if err != nil || rep.OK() || rep.AppliedIndex != 99 {
			t.Fatalf("Verify: %v, %d faults, claims index %d, want 99", err, rep.Faults, rep.AppliedIndex)
		}
		st, err := store.Open(store.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if got := st.Snapshot().Index(); got != rep.AppliedIndex {
			t.Fatalf("the store reached %d, Verify claimed %d", got, rep.AppliedIndex)
		}
	})
}
