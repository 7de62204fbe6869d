package table

import (
	"testing"
	"time"
)

// TestPaceDue checks the pacing arithmetic: a writer may go on once both
// the bytes it wrote (BytesPerSec) and the time it worked (BusyShare)
// allow it, and either limit alone paces it.
func TestPaceDue(t *testing.T) {
	for _, c := range []struct {
		rate  int64
		share float64
		paced int64
		busy  time.Duration
		want  time.Duration
	}{
		{rate: 1 << 20, paced: 1 << 20, busy: time.Second, want: time.Second},                            // bytes only
		{share: 0.1, paced: 1 << 20, busy: 100 * time.Millisecond, want: time.Second},                    // work only
		{rate: 1 << 20, share: 0.1, paced: 4 << 20, busy: 100 * time.Millisecond, want: 4 * time.Second}, // bytes bind
		{rate: 1 << 20, share: 0.1, paced: 1 << 19, busy: 300 * time.Millisecond, want: 3 * time.Second}, // work binds
		{rate: 1 << 20, share: 1, paced: 1 << 20, busy: 5 * time.Second, want: time.Second},              // share 1: bytes only
	} {
		w := &Writer{opts: WriterOptions{BytesPerSec: c.rate, BusyShare: c.share}, paced: c.paced, busy: c.busy}
		if got := w.due(); got != c.want {
			t.Errorf("rate %d share %v paced %d busy %v: due %v, want %v", c.rate, c.share, c.paced, c.busy, got, c.want)
		}
	}
}
