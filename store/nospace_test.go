package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvtool/kvtool/vfs"
)

// TestNoSpaceIsNotAFailure fills the disk under a store (every
// preallocation of a new WAL segment fails with ENOSPC): commits that need
// the next segment fail with ErrNoSpace, nothing changes, the store does
// not fail and keeps serving reads, and commits succeed again once there
// is space, with no restart. Everything acknowledged survives a crash.
func TestNoSpaceIsNotAFailure(t *testing.T) {
	mem, fsys, full := fillableDisk()
	s, err := Open(Options{FS: fsys, Dir: "/data", Create: true, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	put := func(k int) error {
		_, err := s.Put(ctx, fmt.Sprintf("k%04d", k), []byte(strings.Repeat("v", 100)))
		return err
	}
	full.Store(true)
	acked := 0
	for ; ; acked++ {
		if acked > 1000 {
			t.Fatal("the disk never filled")
		}
		before := s.Snapshot().Index()
		if err := put(acked); err != nil {
			if !errors.Is(err, ErrNoSpace) || errors.Is(err, ErrFailed) || s.Err() != nil || s.Snapshot().Index() != before {
				t.Fatalf("put on a full disk: %v (store: %v)", err, s.Err())
			}
			break
		}
	}
	if _, ok := s.Get(fmt.Sprintf("k%04d", acked-1)); !ok {
		t.Fatal("reads stopped on a full disk")
	}
	if _, ok := s.Get(fmt.Sprintf("k%04d", acked)); ok {
		t.Fatal("the refused put is visible")
	}
	full.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for put(acked) != nil { // the log retries its preallocation by itself
		if time.Now().After(deadline) {
			t.Fatal("puts never succeeded again after space was freed")
		}
		time.Sleep(time.Millisecond)
	}
	for k := acked + 1; k < acked+100; k++ {
		if err := put(k); err != nil {
			t.Fatal(err)
		}
	}
	img := mem.CrashClone(vfs.CrashOptions{})
	r, err := Open(Options{FS: img, Dir: "/data"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for k := 0; k < acked+100; k++ {
		if _, ok := r.Get(fmt.Sprintf("k%04d", k)); !ok {
			t.Fatalf("acknowledged k%04d lost", k)
		}
	}
}

// fillableDisk is an in-memory disk that runs out of space when full is
// set: preparing the next WAL segment (its preallocation) then fails with
// ENOSPC, while everything already allocated keeps working.
func fillableDisk() (mem *vfs.MemFS, fsys vfs.FS, full *atomic.Bool) {
	mem, full = vfs.NewMem(), new(atomic.Bool)
	fsys = vfs.NewErrorFS(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if full.Load() && op == vfs.OpPreallocate && strings.Contains(path, ".tmp-") {
			return syscall.ENOSPC
		}
		return nil
	}))
	return mem, fsys, full
}
