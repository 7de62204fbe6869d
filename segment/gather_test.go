package segment

import (
	"sync"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// TestGatherDoesNotStall checks the adaptive group commit: after a large
// cohort of appenders is released and does not come back, a lone append
// still completes (the flusher's wait for the cohort is bounded), and
// every record is durable and readable in order.
func TestGatherDoesNotStall(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Options{FS: vfs.Default, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 64; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := l.Append(format.FrameWALNoop, nil); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for i := 0; i < 3; i++ { // lone appends after the cohort left
			if _, err := l.Append(format.FrameWALNoop, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	last := l.LastIndex()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(vfs.Default, dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for want := uint64(1); want <= last; want++ {
		e, err := r.Next()
		if err != nil || e.Index != want {
			t.Fatalf("entry %d: %+v %v", want, e, err)
		}
	}
}

// TestGatherWakesOncePerBatch checks that appenders wake a gathering
// flusher once its batch holds what it waits for, not once per record:
// with 64 appenders in a loop, up to 63 pokes a batch took CPU and the
// log's lock from the very appenders the flusher waited for.
func TestGatherWakesOncePerBatch(t *testing.T) {
	l, err := Open(Options{FS: vfs.Default, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 50 {
				if _, err := l.Append(format.FrameWALNoop, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil { // the flusher has stopped: its counts are still
		t.Fatal(err)
	}
	gathers, wakes := l.fl.gathers, l.fl.gatherWakes
	t.Logf("%d gathers, %d wakes", gathers, wakes)
	if gathers == 0 {
		t.Fatal("the flusher never gathered: the test did not exercise the wait")
	}
	// A wait may also see one stale poke, left by a record of a batch the
	// flusher stopped waiting for.
	if wakes > 2*gathers {
		t.Fatalf("%d wakes in %d gathers: appenders poke the flusher per record", wakes, gathers)
	}
}
