package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/vfs"
)

// TestRunMaintenance runs the automatic policy beside a writer and checks
// that it takes deltas, merges them and compacts, and that the directory
// still reopens to the same state.
func TestRunMaintenance(t *testing.T) {
	m := vfs.NewMem()
	s, err := Open(Options{FS: m, Dir: "/d", Create: true, SegmentSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	seen := map[string]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunMaintenance(ctx, MaintenancePolicy{Tick: time.Millisecond, DeltaEvery: 2 * time.Millisecond,
			MergeAfterDeltas: 2, CompactWALBytes: 1 << 20}, func(ev MaintenanceEvent) {
			if ev.Err != nil {
				t.Errorf("%s: %v", ev.Kind, ev.Err)
			}
			mu.Lock()
			seen[ev.Kind]++
			mu.Unlock()
		})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		putN(t, s, "k", 20)
		mu.Lock()
		ok := seen["delta"] > 0 && seen["merge"] > 0 && seen["compact"] > 0
		mu.Unlock()
		if ok || time.Now().After(deadline) {
			break
		}
	}
	cancel()
	<-done
	t.Logf("maintenance steps: %v", seen)
	for _, k := range []string{"delta", "merge", "compact"} {
		if seen[k] == 0 {
			t.Errorf("no %s step taken", k)
		}
	}
	want := s.Snapshot()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(Options{FS: m, Dir: "/d"})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := s2.Snapshot(); got.Index() != want.Index() || got.Hash() != want.Hash() {
		t.Fatalf("reopened at %d, want %d", got.Index(), want.Index())
	}
}
