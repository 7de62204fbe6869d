package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// openSmall opens a replica with small WAL segments (crash clones copy them).
func openSmall(t *testing.T, fs vfs.FS) *Store {
	t.Helper()
	s, err := Open(Options{FS: fs, Dir: "/data", Create: true, Replica: true, Shards: 4, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// applyN applies n puts at the next indexes of replica s.
func applyN(t *testing.T, s *Store, prefix string, n int) {
	t.Helper()
	for i := range n {
		idx := s.LastIndex() + 1
		wait, _, err := s.ApplyTxnAt(context.Background(), idx, &Txn{Ops: []Op{{Kind: OpPut, Key: fmt.Sprintf("%s%d", prefix, i), Value: []byte(prefix)}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInstallState: a replica takes another store's state at a later
// index; readers see it, the log goes on after it, and a crash image at
// every sync of the install reopens to the old state or the new one.
func TestInstallState(t *testing.T) {
	srcFS := vfs.NewMem()
	src := openSmall(t, srcFS)
	defer src.Close()
	applyN(t, src, "s", 50)
	want := src.Snapshot()

	fs := vfs.NewMem()
	s := openSmall(t, fs)
	applyN(t, s, "old", 10)
	old := s.Snapshot()
	shots := takeCrashImages(fs)
	if err := s.InstallState(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	images := shots.stop()
	if got := s.Snapshot(); got.Index() != 50 || got.Hash() != want.Hash() {
		t.Fatalf("after install: %d/%x, want 50/%x", got.Index(), got.Hash(), want.Hash())
	}
	checkInstalled(t, fs, s, images, old, want)
}

// TestInstallFrom: a replica adopts a received store's files (its base
// checkpoint, restamped, and its WAL tail logged into the replica's WAL,
// or written as a delta when the replica's log already ends past the
// base) instead of writing the state again; the result verifies clean,
// reopens to the same state, takes the log after it, and a crash image at
// every sync of the install reopens to the old state or the new one, or,
// once the WAL tail is being logged, to a state between them from which
// the install completes. With ownBase, the replica's own base has the
// received base's index (so its file name): the received one must not
// replace it before the manifest switch.
func TestInstallFrom(t *testing.T) {
	t.Run("fresh", func(t *testing.T) { testInstallFrom(t, 10, false) })
	t.Run("log past the base", func(t *testing.T) { testInstallFrom(t, 60, false) })
	t.Run("own base at the same index", func(t *testing.T) { testInstallFrom(t, 10, true) })
}

// testInstallFrom installs a received store with a base at 50 and a WAL
// tail to 75 into a replica that applied had entries.
func testInstallFrom(t *testing.T, had int, ownBase bool) {
	fs := vfs.NewMem() // the received store is on the same file system, elsewhere
	src, err := Open(Options{FS: fs, Dir: "/staged", Create: true, Replica: true, Shards: 4, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	applyN(t, src, "s", 50)
	if _, err := src.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	applyN(t, src, "t", 20) // the WAL tail after the base
	applyN(t, src, "s", 5)  // which also changes keys the base holds
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	staged, err := Open(Options{FS: fs, Dir: "/staged", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer staged.Close()
	want := staged.Snapshot()
	srcBase := *staged.CurrentManifest().Base

	s := openSmall(t, fs)
	applyN(t, s, "old", had)
	if ownBase {
		applyN(t, s, "own", 40)
		if _, err := s.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	old := s.Snapshot()
	shots := takeCrashImages(fs)
	if err := s.InstallFrom(context.Background(), staged); err != nil {
		t.Fatal(err)
	}
	images := shots.stop()
	if got := s.Snapshot(); got.Index() != 75 || got.Hash() != want.Hash() {
		t.Fatalf("after install: %d/%x, want 75/%x", got.Index(), got.Hash(), want.Hash())
	}
	m := s.CurrentManifest()
	switch {
	case ownBase:
		if m.Base == nil || m.Base.Index != 75 || len(m.Deltas) != 0 {
			t.Fatalf("manifest %+v: want a base written at 75", m)
		}
	case m.Base == nil || m.Base.Index != srcBase.Index || m.StoreID == staged.StoreID():
		t.Fatalf("manifest %+v: want the received base at %d (under this store's ID)", m, srcBase.Index)
	case uint64(had) > srcBase.Index:
		if len(m.Deltas) != 1 || m.Deltas[0].Index != 75 || m.WALFirstIndex != 76 {
			t.Fatalf("manifest %+v: want one delta to 75 after the base", m)
		}
	case len(m.Deltas) != 0 || m.WALFirstIndex != srcBase.Index+1 || s.Log().FirstIndex() > m.WALFirstIndex || s.LastIndex() != 75:
		t.Fatalf("manifest %+v, WAL %d..%d: want no delta and the WAL from %d to 75", m, s.Log().FirstIndex(), s.LastIndex(), srcBase.Index+1)
	}
	rep, err := datadir.Verify(fs, "/data", datadir.VerifyOptions{})
	if err != nil || rep.Faults > 0 {
		t.Fatalf("verify after install: %v, %d faults: %+v", err, rep.Faults, rep.Files)
	}
	checkInstalled(t, fs, s, images, old, want)
}

// TestInstallFromTailInDelta: the WAL tail an install logged counts as
// changed for the next delta, so a merge of the base and that delta (with
// the WAL dropped) holds the installed state and what came after it.
func TestInstallFromTailInDelta(t *testing.T) {
	fs := vfs.NewMem()
	src, err := Open(Options{FS: fs, Dir: "/staged", Create: true, Replica: true, Shards: 4, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	applyN(t, src, "s", 50)
	if _, err := src.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	applyN(t, src, "t", 20)
	applyN(t, src, "s", 5)
	src.Close()
	staged, err := Open(Options{FS: fs, Dir: "/staged", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer staged.Close()
	s := openSmall(t, fs)
	if err := s.InstallFrom(context.Background(), staged); err != nil {
		t.Fatal(err)
	}
	if m := s.CurrentManifest(); len(m.Deltas) != 0 || m.WALFirstIndex != 51 {
		t.Fatalf("manifest %+v: want the tail kept in the WAL from 51", m)
	}
	applyN(t, s, "new", 3)
	ctx := context.Background()
	if _, err := s.Delta(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Merge(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	want := s.Snapshot()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	re := openSmall(t, fs)
	defer re.Close()
	if m := re.CurrentManifest(); m.WALFirstIndex != 79 || re.Log().FirstIndex() != 79 {
		t.Fatalf("manifest %+v, WAL from %d: want the state merged to 78 and the WAL from 79", m, re.Log().FirstIndex())
	}
	if got := re.Snapshot(); got.Index() != want.Index() || got.Hash() != want.Hash() {
		t.Fatalf("reopened from the merged base: %d/%x, want %d/%x", got.Index(), got.Hash(), want.Index(), want.Hash())
	}
}

// crashImages collects a crash image of a file system at each of its
// syncs. The hook runs on whichever goroutine syncs (the WAL's flusher
// among them), so the list is behind a lock.
type crashImages struct {
	fs     *vfs.MemFS
	mu     sync.Mutex
	images []*vfs.MemFS
}

func takeCrashImages(fs *vfs.MemFS) *crashImages {
	c := &crashImages{fs: fs}
	fs.SetSyncHook(func(int64) {
		img := fs.CrashClone(vfs.CrashOptions{})
		c.mu.Lock()
		c.images = append(c.images, img)
		c.mu.Unlock()
	})
	return c
}

// stop removes the hook and returns the images taken so far.
func (c *crashImages) stop() []*vfs.MemFS {
	c.fs.SetSyncHook(nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*vfs.MemFS(nil), c.images...)
}

// checkInstalled checks a store s just installed to want (on fs, in
// /data) takes three more entries and reopens to them, and that each crash
// image taken at a sync of the install opens to the state before it (old)
// or to want, whose log then goes on; both must occur.
func checkInstalled(t *testing.T, fs *vfs.MemFS, s *Store, images []*vfs.MemFS, old, want *Snapshot) {
	t.Helper()
	applyN(t, s, "new", 3)
	end := s.Snapshot()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	re := openSmall(t, fs)
	if got := re.Snapshot(); got.Index() != want.Index()+3 || got.Hash() != end.Hash() {
		t.Fatalf("reopened: %d/%x, want %d/%x", got.Index(), got.Hash(), want.Index()+3, end.Hash())
	}
	re.Close()
	olds, news, mids := 0, 0, 0
	for i, img := range images {
		st, err := Open(Options{FS: img, Dir: "/data", Replica: true, SegmentSize: 64 << 10})
		if err != nil {
			t.Fatalf("image %d of %d: %v", i, len(images), err)
		}
		got := st.Snapshot()
		switch {
		case got.Index() == old.Index() && got.Hash() == old.Hash():
			olds++
		case got.Index() == want.Index() && got.Hash() == want.Hash():
			news++
			applyN(t, st, "after", 1) // the log goes on after the snapshot
		case got.Index() > old.Index() && got.Index() < want.Index():
			// The install logged part of the received WAL tail: a state
			// of the same log between the two, which the install, run
			// again from the received store (as a cluster member resumes
			// it), completes.
			mids++
			resumeInstall(t, img, st, want, i)
		default:
			t.Fatalf("image %d: state %d/%x, want the old %d/%x or the new %d/%x", i, got.Index(), got.Hash(), old.Index(), old.Hash(), want.Index(), want.Hash())
		}
		st.Close()
	}
	if olds == 0 || news == 0 {
		t.Fatalf("%d images old, %d new: want both", olds, news)
	}
	t.Logf("%d crash images: %d old, %d new, %d between", len(images), olds, news, mids)
}

// resumeInstall installs the received store in /staged of img into st
// again, and checks st then holds want.
func resumeInstall(t *testing.T, img *vfs.MemFS, st *Store, want *Snapshot, i int) {
	t.Helper()
	staged, err := Open(Options{FS: img, Dir: "/staged", ReadOnly: true})
	if err != nil {
		t.Fatalf("image %d: open the received store: %v", i, err)
	}
	defer staged.Close()
	if err := st.InstallFrom(context.Background(), staged); err != nil {
		t.Fatalf("image %d (state at %d): install again: %v", i, st.Snapshot().Index(), err)
	}
	if got := st.Snapshot(); got.Index() != want.Index() || got.Hash() != want.Hash() {
		t.Fatalf("image %d: installed again to %d/%x, want %d/%x", i, got.Index(), got.Hash(), want.Index(), want.Hash())
	}
	applyN(t, st, "after", 1)
}

// TestInstallFromDamagedBase: a received base damaged after it was loaded
// (a flipped byte in a block) is not adopted under a fresh checksum: the
// install fails with a corruption error naming the file, and the replica
// keeps its state.
func TestInstallFromDamagedBase(t *testing.T) {
	fs := vfs.NewMem()
	src, err := Open(Options{FS: fs, Dir: "/staged", Create: true, Replica: true, Shards: 4, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	applyN(t, src, "s", 50)
	info, err := src.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	staged, err := Open(Options{FS: fs, Dir: "/staged", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer staged.Close()
	f, err := fs.OpenReadWrite(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	off := info.Size / 2
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s := openSmall(t, fs)
	defer s.Close()
	applyN(t, s, "old", 10)
	old := s.Snapshot()
	err = s.InstallFrom(context.Background(), staged)
	if !errors.Is(err, format.ErrCorruption) || !strings.Contains(err.Error(), info.Path) {
		t.Fatalf("install of a damaged base: %v, want a corruption error naming %s", err, info.Path)
	}
	if got := s.Snapshot(); got.Index() != old.Index() || got.Hash() != old.Hash() {
		t.Fatalf("after the failed install: %d/%x, want the old %d/%x", got.Index(), got.Hash(), old.Index(), old.Hash())
	}
	applyN(t, s, "more", 1) // the replica goes on
}

// TestAddWALKeysStopsAtEnd: the keys of a WAL range are read up to its
// last entry and no further: a delta never depends on what follows it in
// the log (here, a damaged entry), and the reader does not scan a
// segment's preallocated rest after the range's last entry (the delta of
// an install, on a joiner).
func TestAddWALKeysStopsAtEnd(t *testing.T) {
	fs := vfs.NewMem()
	s := openSmall(t, fs)
	defer s.Close()
	applyN(t, s, "k", 9)
	end9 := s.Log().Segments()[0].Size
	applyN(t, s, "x", 1)
	f, err := fs.OpenReadWrite(s.Log().Segments()[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xfe}, end9+24); err != nil { // inside entry 10
		t.Fatal(err)
	}
	f.Close()
	keys := map[string]struct{}{}
	if err := s.addWALKeys(keys, indexRange{from: 1, to: 9}); err != nil {
		t.Fatalf("keys of entries 1..9: %v", err)
	}
	if len(keys) != 9 {
		t.Fatalf("%d keys, want 9", len(keys))
	}
}

// TestAddWALKeysRefusesMissingEntries: a delta's keys are those of the WAL
// entries after the chain's index, so a range the WAL does not hold whole
// is an error, never a delta that silently leaves keys out: neither a WAL
// that ends before the range does nor one that starts after it ends.
func TestAddWALKeysRefusesMissingEntries(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open(Options{FS: fs, Dir: "/data", Create: true, Replica: true, Shards: 4, SegmentSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	applyN(t, s, "k", 9)
	if err := s.addWALKeys(map[string]struct{}{}, indexRange{from: 1, to: 12}); err == nil {
		t.Error("the keys of entries 1..12 read from a WAL that ends at 9: no error")
	}
	applyN(t, s, "a-longer-key-to-fill-segments-", 200)
	if _, err := s.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := s.Log().FirstIndex()
	if first <= 10 {
		t.Fatalf("the compacted WAL starts at %d: want it past 10", first)
	}
	if err := s.addWALKeys(map[string]struct{}{}, indexRange{from: 2, to: 9}); err == nil {
		t.Errorf("the keys of entries 2..9 read from a WAL that starts at %d: no error", first)
	}
	applyN(t, s, "z", 3)
	keys := map[string]struct{}{}
	if err := s.addWALKeys(keys, indexRange{from: first, to: first + 2}); err != nil || len(keys) != 3 {
		t.Errorf("the keys of entries %d..%d: %d keys, %v", first, first+2, len(keys), err)
	}
}
