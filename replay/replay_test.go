package replay_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kvtool/kvtool/replay"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// build makes a directory with a base at 20, a delta to 30 and a WAL to 40,
// and returns the state hash at every index.
func build(t *testing.T) (vfs.FS, map[uint64]uint64) {
	fsys := vfs.NewMem()
	s, err := store.Open(store.Options{FS: fsys, Dir: "/d", Create: true, Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hashes := map[uint64]uint64{}
	for i := 1; i <= 40; i++ {
		key := fmt.Sprintf("k%02d", i%7)
		if i%5 == 0 {
			_, err = s.Delete(context.Background(), key)
		} else {
			_, err = s.Put(context.Background(), key, []byte(fmt.Sprint(i)))
		}
		if err != nil {
			t.Fatal(err)
		}
		snap := s.Snapshot()
		hashes[snap.Index()] = snap.Hash()
		switch snap.Index() {
		case 20:
			if _, err := s.Compact(context.Background()); err != nil {
				t.Fatal(err)
			}
		case 30:
			if _, err := s.Delta(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return fsys, hashes
}

func TestDirPointInTime(t *testing.T) {
	fsys, hashes := build(t)
	for idx := uint64(20); idx <= 40; idx++ {
		if _, ok := hashes[idx]; !ok {
			continue
		}
		mem := replay.NewMemory()
		res, err := replay.Dir(fsys, "/d", replay.Options{ToIndex: idx}, mem)
		if err != nil {
			t.Fatalf("to %d: %v", idx, err)
		}
		if res.AppliedIndex != idx || mem.Hash() != hashes[idx] {
			t.Fatalf("to %d: applied %d hash %x, want %x", idx, res.AppliedIndex, mem.Hash(), hashes[idx])
		}
		if res.Term != 1 {
			t.Errorf("to %d: term %d, want 1", idx, res.Term)
		}
		wantDeltas := 0
		if idx >= 30 {
			wantDeltas = 1
		}
		if res.BaseIndex != 20 || len(res.Deltas) != wantDeltas {
			t.Errorf("to %d: chain %+v", idx, res.Chain)
		}
	}
}

func TestDirNotCovered(t *testing.T) {
	fsys, _ := build(t)
	for _, idx := range []uint64{5, 19, 41, 1000} {
		_, err := replay.Dir(fsys, "/d", replay.Options{ToIndex: idx}, replay.NewMemory())
		if !errors.Is(err, replay.ErrNotCovered) {
			t.Errorf("to %d: %v, want ErrNotCovered", idx, err)
		}
	}
}
