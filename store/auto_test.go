package store

import (
	"context"
	"fmt"
	"strings"
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

// TestRunMaintenanceStopIsNotFailure cancels RunMaintenance while a delta
// is being written (from inside the file system, so the timing is exact):
// a step cut short by shutdown stops at its safe point and is not reported
// as a failed step.
func TestRunMaintenanceStopIsNotFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fsys := vfs.NewErrorFS(vfs.NewMem(), vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpWrite && strings.Contains(path, ".delta") {
			cancel()
		}
		return nil
	}))
	s, err := Open(Options{FS: fsys, Dir: "/d", Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 200 {
		putN(t, s, fmt.Sprintf("k%03d-", i), 5)
	}
	var events []MaintenanceEvent
	s.RunMaintenance(ctx, MaintenancePolicy{Tick: time.Millisecond, DeltaEvery: time.Nanosecond}, func(ev MaintenanceEvent) {
		events = append(events, ev)
	})
	for _, ev := range events {
		if ev.Err != nil {
			t.Errorf("a step stopped by shutdown was reported as failed: %s: %v", ev.Kind, ev.Err)
		}
	}
	if ctx.Err() == nil {
		t.Fatal("no delta was written")
	}
}
