package segment

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// TestNoGather: after a flush that released a cohort of five, the
// flusher of an ordinary log waits (up to half an fsync) for five records
// before taking the next batch; a NoGather log (a raft log: its Ready loop
// appends a Ready's entries at once, then waits for them) takes a lone
// record at once. The fsync estimate is made huge, so a gathering flusher
// would hold the record far past the test's generous deadline.
func TestNoGather(t *testing.T) {
	opts := memOpts(vfs.NewMem(), 1<<20)
	opts.NoGather = true
	var lp atomic.Pointer[Log]
	opts.OnSync = func(st SyncStats) {
		if l := lp.Load(); l != nil && st.Records > 1 {
			l.fl.syncEWMA = time.Hour // on the flusher's goroutine, which owns it
		}
	}
	l := mustOpen(t, opts)
	lp.Store(l)
	defer l.Close()
	var p *Pending
	for range 5 {
		var err error
		if p, err = l.Enqueue(format.FrameWALTxn, []byte("cohort")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	lone, err := l.Enqueue(format.FrameWALTxn, []byte("lone"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-lone.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("a lone record waited 30s for a cohort of 5 on a NoGather log")
	}
}
