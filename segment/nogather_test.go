package segment

import (
	"runtime"
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
	// Either the record becomes durable, or the flusher is seen gathering
	// (it would then hold the record for half an hour): no clock decides.
	for {
		select {
		case <-lone.Done():
			return
		default:
		}
		l.mu.Lock()
		gathering := l.gathering
		l.mu.Unlock()
		if gathering {
			t.Fatal("a NoGather log's flusher waits for a cohort of 5 instead of taking the lone record")
		}
		runtime.Gosched()
	}
}

// TestSyncInterval: a paced log holds a record written after a sync until
// the interval has passed (here an hour: the flusher is seen waiting, the
// record not durable), and Close makes it durable at once.
func TestSyncInterval(t *testing.T) {
	l, p2 := heldRecord(t)
	select {
	case <-p2.Done():
		t.Fatal("the second record was synced within the interval")
	default:
	}
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	err := <-closed
	select {
	case <-p2.Done():
		if err := p2.Wait(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("Close returned with the held record not synced")
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestSyncIntervalHurry: Hurry ends a paced log's wait for the record it
// names: the record becomes durable while the log stays open, with an hour
// of the interval left.
func TestSyncIntervalHurry(t *testing.T) {
	l, p2 := heldRecord(t) // the flusher holds the record before it is hurried
	defer l.Close()
	l.Hurry(p2)
	waitFor(t, "the hurried record to sync (not held by the sync interval)", func() bool {
		select {
		case <-p2.Done():
			return true
		default:
			return false
		}
	})
	if err := p2.Wait(); err != nil {
		t.Fatal(err)
	}
	if d := l.DurableIndex(); d != p2.Index() {
		t.Fatalf("durable index %d after the hurried record %d synced", d, p2.Index())
	}
}

// heldRecord opens a log paced at one sync an hour, writes a first record
// (synced at once) and a second, and returns once the flusher holds the
// second back for the rest of the interval; the caller closes the log.
func heldRecord(t *testing.T) (*Log, *Pending) {
	t.Helper()
	opts := memOpts(vfs.NewMem(), 1<<20)
	opts.SyncInterval = time.Hour
	l := mustOpen(t, opts)
	p1, err := l.Enqueue(format.FrameWALTxn, []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p1.Wait(); err != nil { // the first batch goes at once
		t.Fatal(err)
	}
	p2, err := l.Enqueue(format.FrameWALTxn, []byte("second"))
	if err != nil {
		t.Fatal(err)
	}
	waitGathering(t, l)
	return l, p2
}

// waitGathering waits until l's flusher holds a batch back (the sync
// interval's pace).
func waitGathering(t *testing.T, l *Log) {
	t.Helper()
	waitFor(t, "the flusher to hold the second record", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.gathering
	})
}
