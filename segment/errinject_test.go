package segment

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// armed passes calls to inj only once armed, so Open itself is not hit.
type armed struct {
	on  atomic.Bool
	inj vfs.Injector
}

func (a *armed) MaybeError(op vfs.Op, path string) error {
	if !a.on.Load() {
		return nil
	}
	return a.inj.MaybeError(op, path)
}

// segmentFiles passes to inj only the calls on segment files (paths ending
// in .wal), not on the spare the background worker prepares: a failure
// there writes nothing and does not stop the log (see spare_test.go).
func segmentFiles(inj vfs.Injector) vfs.Injector {
	return vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if !strings.HasSuffix(path, ".wal") {
			return nil
		}
		return inj.MaybeError(op, path)
	})
}

type result struct {
	index uint64
	err   error
}

// TestFailedIOStopsTheLog injects one failure into the append path. Once it
// has happened no append is ever acknowledged again, even though the next
// fsync would succeed (fsyncgate: a failed fsync is never retried).
func TestFailedIOStopsTheLog(t *testing.T) {
	cases := []struct {
		name string
		inj  vfs.Injector
	}{
		{"fsync", segmentFiles(vfs.FailOnce(vfs.OpSync, ".wal", nil))},
		{"fsync later", segmentFiles(vfs.FailAfter(vfs.OpSync, ".wal", 5, nil))},
		{"write", segmentFiles(vfs.FailOnce(vfs.OpWrite, ".wal", nil))},
		{"rename on rotation", segmentFiles(vfs.FailOnce(vfs.OpRename, ".wal", nil))},
		{"fsync dir on rotation", vfs.FailOnce(vfs.OpSyncDir, "wal", nil)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { testFailure(t, c.inj) })
	}
}

func testFailure(t *testing.T, inj vfs.Injector) {
	mem := vfs.NewMem()
	a := &armed{inj: inj}
	l := mustOpen(t, memOpts(vfs.NewErrorFS(mem, a), 1024))
	appendN(t, l, 10)
	a.on.Store(true)
	var (
		mu      sync.Mutex
		results []result
		pending []*Pending
		wg      sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			for k := 0; k < 200; k++ {
				if w%2 == 0 {
					p, err := l.Enqueue(format.FrameWALTxn, payload(uint64(k)))
					mu.Lock()
					if err == nil {
						pending = append(pending, p)
					}
					mu.Unlock()
					if err != nil {
						return
					}
					continue
				}
				i, err := l.Append(format.FrameWALTxn, payload(uint64(k)))
				mu.Lock()
				results = append(results, result{i, err})
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, p := range pending {
		results = append(results, result{p.Index(), p.Wait()})
	}
	checkFailed(t, l, results)
	// Everything acknowledged survives a power loss now: what the disk
	// holds is the synced state (and, in a torn image, some of what was
	// written after it), never the live file system's page cache.
	exact := mem.CrashClone(vfs.CrashOptions{})
	torn := mem.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(1, 2)), TearLast: true})
	l.Close()
	for _, img := range []*vfs.MemFS{exact, torn} {
		checkAcked(t, img, results)
	}
}

// checkAcked recovers the crash image img and checks that every
// acknowledged result is in it.
func checkAcked(t *testing.T, img *vfs.MemFS, results []result) {
	t.Helper()
	opts := memOpts(img, 1024)
	opts.RepairTail = true
	l, err := Open(opts)
	if err != nil {
		t.Fatalf("recover the crash image: %v", err)
	}
	l.Close()
	es, err := readAll(img, testDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.err == nil && (r.index > uint64(len(es)) || es[r.index-1].Index != r.index) {
			t.Fatalf("acknowledged record %d is not in the crash image (it holds %d records)", r.index, len(es))
		}
	}
}

// checkFailed checks the log after a failure: it says so, refuses all work,
// and acknowledged exactly the records up to its durable index.
func checkFailed(t *testing.T, l *Log, results []result) {
	t.Helper()
	if !errors.Is(l.Err(), ErrFailed) {
		t.Fatalf("Err() = %v after an I/O failure", l.Err())
	}
	d := l.DurableIndex()
	var failed int
	for _, r := range results {
		switch {
		case r.err == nil && r.index > d:
			t.Fatalf("record %d acknowledged past the durable index %d", r.index, d)
		case r.err != nil && !errors.Is(r.err, ErrFailed):
			t.Fatalf("append failed with %v, want ErrFailed", r.err)
		case r.err != nil && r.index != 0 && r.index <= d:
			t.Fatalf("record %d failed but is below the durable index %d", r.index, d)
		case r.err != nil:
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no append failed")
	}
	if _, err := l.Append(format.FrameWALNoop, nil); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after the failure: %v", err)
	}
	if _, err := l.Enqueue(format.FrameWALNoop, nil); !errors.Is(err, ErrFailed) {
		t.Fatalf("Enqueue after the failure: %v", err)
	}
	if err := l.Rotate(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Rotate after the failure: %v", err)
	}
	if l.DurableIndex() != d {
		t.Fatal("the durable index moved after the failure")
	}
}

// TestFailedSyncPendingWaiters: records enqueued before the failed fsync,
// and still waiting, get ErrFailed; Close reports the failure.
func TestFailedSyncPendingWaiters(t *testing.T) {
	mem := vfs.NewMem()
	a := &armed{inj: segmentFiles(vfs.FailAfter(vfs.OpSync, ".wal", 0, nil))} // every sync fails
	l := mustOpen(t, memOpts(vfs.NewErrorFS(mem, a), 1<<20))
	a.on.Store(true)
	var ps []*Pending
	for i := range 100 {
		p, err := l.Enqueue(format.FrameWALTxn, payload(uint64(i)))
		if err != nil {
			break // the failure can overtake the loop
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := p.Wait(); !errors.Is(err, ErrFailed) {
			t.Fatalf("Wait of %d: %v", p.Index(), err)
		}
	}
	if l.DurableIndex() != 0 {
		t.Fatalf("durable index %d", l.DurableIndex())
	}
	if err := l.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close: %v", err)
	}
}
