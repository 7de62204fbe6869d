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
