package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// TestOpenFromBaseBlocks: a store opened with Options.Base takes its base
// checkpoint's state from the blocks another pass decoded (a cluster
// member's verification of a received snapshot) and does not decode the
// file again: with a block of the file damaged since, it still opens to
// the state it had, where an open without Base refuses the damage. A
// BaseBlocks of another checkpoint is ignored.
func TestOpenFromBaseBlocks(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	s, err := Open(Options{FS: fs, Dir: "/d", Create: true, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	put := func(from, to int) {
		for i := from; i < to; i++ {
			k := fmt.Sprintf("k%05d", i)
			if _, err := s.Put(ctx, k, []byte(k+"-value-"+k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(0, 3000)
	old, err := s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	put(2000, 4000)
	info, err := s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	put(3500, 4500) // a WAL tail after the base
	want := s.Snapshot().Hash()
	s.Close()

	blocksOf := func(info checkpoint.Info) *BaseBlocks {
		bb := NewBaseBlocks(info)
		rep, err := checkpoint.Verify(fs, info.Path, table.VerifyOptions{Block: bb.Add})
		if err != nil || !rep.OK() {
			t.Fatalf("verify %s: %v %v", info.Path, err, rep.Err())
		}
		return bb
	}
	other := blocksOf(old)
	if st, err := Open(Options{FS: fs, Dir: "/d", ReadOnly: true, Base: other}); err != nil {
		t.Fatal(err)
	} else if got := st.Snapshot().Hash(); got != want {
		st.Close()
		t.Fatalf("opened with the blocks of another checkpoint: hash %016x, want %016x", got, want)
	} else {
		st.Close()
	}

	bb := blocksOf(info)
	path := filepath.Join("/d", format.SnapDir, filepath.Base(info.Path))
	b := readAllFile(t, fs, path)
	b[len(b)/2] ^= 0x10
	writeAllFile(t, fs, path, b)
	if st, err := Open(Options{FS: fs, Dir: "/d", ReadOnly: true}); err == nil {
		st.Close()
		t.Fatal("a damaged base opened without Base")
	}
	st, err := Open(Options{FS: fs, Dir: "/d", ReadOnly: true, Base: bb})
	if err != nil {
		t.Fatalf("open with the base's blocks: %v (was the file decoded again?)", err)
	}
	defer st.Close()
	if got := st.Snapshot().Hash(); got != want {
		t.Fatalf("opened from the base's blocks: hash %016x, want %016x", got, want)
	}
}

func readAllFile(t *testing.T, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeAllFile(t *testing.T, fs vfs.FS, path string, b []byte) {
	t.Helper()
	f, err := fs.OpenReadWrite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
}
