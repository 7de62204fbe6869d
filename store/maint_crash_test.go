package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvtool/kvtool/vfs"
)

// TestCrashDuringMaintenance crashes at the sync boundaries of every
// maintenance step — checkpoint writing, manifest publication, delta
// creation, merging, segment dropping — while transfers keep committing, and
// checks every image: recovery succeeds and is idempotent, every
// acknowledged transfer is present, balances match the transfers present
// (no partial transaction), and compaction on the recovered directory
// succeeds and changes nothing visible (files the manifest does not name,
// left by the crash, are removed, never trusted).
func TestCrashDuringMaintenance(t *testing.T) {
	perStep := 15 // crash images per maintenance step
	if v, err := strconv.Atoi(os.Getenv("KVTOOL_CRASH_IMAGES")); err == nil && v > 0 {
		perStep = v
	}
	ctx := context.Background()
	m := vfs.NewMem()
	var mu sync.Mutex
	var acked []string
	var taken []crashImage
	var inMaint atomic.Value // name of the running maintenance step, or ""
	inMaint.Store("")
	stepImages := 0 // images taken during the running step
	take := func(n int64, before bool) {
		step := inMaint.Load().(string)
		mu.Lock()
		defer mu.Unlock()
		if step == "" || stepImages >= perStep {
			return
		}
		stepImages++
		opts := vfs.CrashOptions{}
		if before {
			opts = vfs.CrashOptions{Rand: rand.New(rand.NewPCG(uint64(n), 11)), TearLast: true}
		}
		taken = append(taken, crashImage{at: n, what: step, fs: m.CrashClone(opts), acked: append([]string(nil), acked...)})
	}
	fsys := vfs.NewErrorFS(m, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpSync || op == vfs.OpSyncDir || op == vfs.OpRename || op == vfs.OpRemove {
			take(m.SyncCount(), true)
		}
		return nil
	}))
	m.SetSyncHook(func(n int64) { take(n, false) })

	s, err := Open(Options{FS: fsys, Dir: "/data", Create: true, SegmentSize: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	initBank(t, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runBank(t, s, 4, 150, func(id string) {
			mu.Lock()
			acked = append(acked, id)
			mu.Unlock()
		})
	}()
	steps := []struct {
		name string
		f    func() error
	}{
		{"delta", func() error { _, err := s.Delta(ctx); return err }},
		{"delta", func() error { _, err := s.Delta(ctx); return err }},
		{"merge", func() error { _, err := s.Merge(ctx); return err }},
		{"delta", func() error { _, err := s.Delta(ctx); return err }},
		{"checkpoint", func() error { _, err := s.Checkpoint(ctx); return err }},
		{"compact", func() error { _, err := s.Compact(ctx); return err }},
		{"delta", func() error { _, err := s.Delta(ctx); return err }},
		{"compact", func() error { _, err := s.Compact(ctx); return err }},
	}
	for i, st := range steps {
		// A write of its own, so no step can find nothing to do because
		// the background writers happen to be done.
		if _, err := s.Put(ctx, fmt.Sprintf("step:%d", i), []byte(st.name)); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		stepImages = 0
		mu.Unlock()
		inMaint.Store(st.name)
		if err := st.f(); err != nil && !errors.Is(err, ErrNothingToDo) {
			t.Fatalf("%s: %v", st.name, err)
		}
		inMaint.Store("")
	}
	<-done
	m.SetSyncHook(nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, img := range taken {
		kinds[img.what]++
		t.Run(fmt.Sprintf("%s-sync%d", img.what, img.at), func(t *testing.T) {
			checkCrashImage(t, img)
			checkCompactAfterRecovery(t, img)
		})
	}
	t.Logf("crash images by step: %v", kinds)
	for _, k := range []string{"delta", "merge", "checkpoint", "compact"} {
		if kinds[k] == 0 {
			t.Errorf("no crash image during %s", k)
		}
	}
}

// checkCompactAfterRecovery compacts a recovered image and checks that the
// state is unchanged and survives another reopen.
func checkCompactAfterRecovery(t *testing.T, img crashImage) {
	s, err := Open(Options{FS: img.fs, Dir: "/data"})
	if err != nil {
		t.Fatal(err)
	}
	before := s.Snapshot()
	if _, err := s.Compact(context.Background()); err != nil && !errors.Is(err, ErrNothingToDo) {
		t.Fatalf("compact after recovery: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(Options{FS: img.fs, Dir: "/data"})
	if err != nil {
		t.Fatalf("reopen after compaction: %v", err)
	}
	defer s2.Close()
	if got := s2.Snapshot(); got.Index() != before.Index() || got.Hash() != before.Hash() {
		t.Fatalf("compaction changed the state: index %d→%d", before.Index(), got.Index())
	}
}
