package store

import (
	"context"
	"errors"
	"testing"

	"github.com/kvtool/kvtool/vfs"
)

// TestCompactShrinksOneSegmentWAL checks that compaction seals and drops an
// active segment that holds only entries the new checkpoint covers.
func TestCompactShrinksOneSegmentWAL(t *testing.T) {
	s, err := Open(Options{FS: vfs.NewMem(), Dir: "/d", Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	putN(t, s, "k", 50)
	res, err := s.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DroppedSegments) != 1 {
		t.Fatalf("dropped %v, want the one old segment", res.DroppedSegments)
	}
	if segs := s.Log().Segments(); len(segs) != 1 || segs[0].Records != 0 {
		t.Fatalf("segments after compaction: %+v", segs)
	}
	putN(t, s, "j", 5) // the log goes on after the dropped segment
}

// TestMaintenanceAfterClose checks that no maintenance writes after Close.
func TestMaintenanceAfterClose(t *testing.T) {
	s, err := Open(Options{FS: vfs.NewMem(), Dir: "/d", Create: true})
	if err != nil {
		t.Fatal(err)
	}
	putN(t, s, "k", 5)
	s.Close()
	if _, err := s.Checkpoint(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("checkpoint after close: %v", err)
	}
	if _, err := s.Compact(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("compact after close: %v", err)
	}
}

// TestNoopTxnIndexNeverGoesBack checks that a transaction that changes
// nothing answers an index no lower than one acknowledged before it.
func TestNoopTxnIndexNeverGoesBack(t *testing.T) {
	s, err := Open(Options{FS: vfs.NewMem(), Dir: "/d", Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	putN(t, s, "k", 50) // touches every shard, the last ones last
	last, err := s.Put(context.Background(), "z", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"absent-1", "absent-2", "absent-3"} {
		idx, err := s.Delete(context.Background(), key)
		if err != nil || idx < last {
			t.Errorf("delete of absent %s = %d, %v; an index %d was acknowledged before", key, idx, err, last)
		}
	}
}

// TestDeltaAfterRestartCoversWALTail checks that the first delta after a
// restart holds the keys the replayed WAL tail changed (recovery leaves
// them for the delta to read from the WAL), including deletes.
func TestDeltaAfterRestartCoversWALTail(t *testing.T) {
	ctx := context.Background()
	m := vfs.NewMem()
	s, err := Open(Options{FS: m, Dir: "/d", Create: true})
	if err != nil {
		t.Fatal(err)
	}
	putN(t, s, "base", 20)
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	putN(t, s, "tail", 7)
	if _, err := s.Delete(ctx, "base0003"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(Options{FS: m, Dir: "/d"})
	if err != nil {
		t.Fatal(err)
	}
	putN(t, s, "live", 2)
	info, err := s.Delta(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Puts != 9 || info.Tombstones != 1 {
		t.Errorf("delta after restart: %d puts, %d tombstones; want 9 (7 tail + 2 live) and 1", info.Puts, info.Tombstones)
	}
	want := s.Snapshot().Hash()
	s.Close()
	// The base and the delta alone rebuild the state.
	s, err = Open(Options{FS: m, Dir: "/d"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Snapshot().Hash(); got != want {
		t.Fatalf("state after reopen %x, want %x", got, want)
	}
}
