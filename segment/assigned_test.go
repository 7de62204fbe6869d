package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// termData is the payload of record i written in term t: it names both, so
// a record read back tells which log it came from.
func termData(i, t uint64) []byte {
	return fmt.Appendf(bytes.Repeat([]byte{byte(i)}, int(i*13%97)), "i=%d t=%d", i, t)
}

// appendAt appends records from..to in term t with EnqueueAt and waits.
func appendAt(t testing.TB, l *Log, from, to, term uint64) {
	t.Helper()
	var last *Pending
	for i := from; i <= to; i++ {
		p, err := l.EnqueueAt(i, term, format.FrameWALRaft, termData(i, term))
		if err != nil {
			t.Fatalf("EnqueueAt %d: %v", i, err)
		}
		last = p
	}
	if err := last.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func TestEnqueueAtChecksIndexAndTerm(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, Options{FS: fs, Dir: testDir, SegmentSize: 1024, Term: 3})
	defer l.Close()
	appendAt(t, l, 1, 5, 3)
	for _, c := range []struct{ idx, term uint64 }{{5, 3}, {7, 3}, {6, 2}} {
		if _, err := l.EnqueueAt(c.idx, c.term, format.FrameWALRaft, nil); !errors.Is(err, ErrNotNext) {
			t.Errorf("EnqueueAt(%d, term %d) = %v, want ErrNotNext", c.idx, c.term, err)
		}
	}
	appendAt(t, l, 6, 40, 4) // crosses segments: rotation headers carry a term no record is below
	es, err := readAll(fs, testDir, 1)
	if err != nil || len(es) != 40 {
		t.Fatalf("read back %d entries, err %v", len(es), err)
	}
	for _, e := range es {
		want := uint64(3)
		if e.Index > 5 {
			want = 4
		}
		if e.Term != want || !bytes.Equal(e.Data, termData(e.Index, want)) {
			t.Fatalf("entry %d: term %d data %q", e.Index, e.Term, e.Data)
		}
	}
}

// truncateAndAppend is the raft follower's path: a log of 1..old in term 1
// over small segments, cut after keep, reopened, and 1+keep..keep+add
// appended in term 2.
func truncateAndAppend(t testing.TB, fs vfs.FS, old, keep, add uint64) Truncation {
	t.Helper()
	opts := Options{FS: fs, Dir: testDir, SegmentSize: 1024, Term: 1, RepairTail: true}
	l := mustOpen(t, opts)
	appendAt(t, l, 1, old, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tr, err := TruncateAfter(fs, testDir, keep)
	if err != nil {
		t.Fatalf("TruncateAfter(%d): %v", keep, err)
	}
	opts.Term = 0
	l = mustOpen(t, opts)
	if l.LastIndex() != keep {
		t.Fatalf("after the cut the log ends at %d, want %d", l.LastIndex(), keep)
	}
	appendAt(t, l, keep+1, keep+add, 2)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestTruncateAfter(t *testing.T) {
	for _, keep := range []uint64{1, 2, 17, 29, 30, 59} {
		t.Run(fmt.Sprint(keep), func(t *testing.T) {
			fs := vfs.NewMem()
			tr := truncateAndAppend(t, fs, 60, keep, 10)
			if tr.OldLast != 60 || tr.Last != keep {
				t.Errorf("truncation %+v, want OldLast 60, Last %d", tr, keep)
			}
			checkCutLog(t, fs, keep, keep+10, 60)
		})
	}
}

func TestTruncateAfterRefusesBelowTheLog(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, Options{FS: fs, Dir: testDir, SegmentSize: 1024, FirstIndex: 10})
	appendAt(t, l, 10, 12, 1)
	l.Close()
	if _, err := TruncateAfter(fs, testDir, 5); err == nil {
		t.Fatal("TruncateAfter below the log's first index succeeded")
	}
	if es, err := readAll(fs, testDir, 1); err != nil || len(es) != 3 {
		t.Fatalf("the refused cut changed the log: %d entries, %v", len(es), err)
	}
}

// checkCutLog checks the log in fs is a prefix of the old log (1..oldLast
// in term 1) or the old log's first keep records followed by a prefix of
// the new ones (term 2) ending at most at newLast — never a mix of old
// records after the cut with new ones — and returns its last index.
func checkCutLog(t testing.TB, fs vfs.FS, keep, newLast, oldLast uint64) uint64 {
	t.Helper()
	es, err := readAll(fs, testDir, 1)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	sawNew := false
	for i, e := range es {
		if e.Index != uint64(i+1) {
			t.Fatalf("entry %d has index %d", i+1, e.Index)
		}
		switch {
		case e.Term == 2 && e.Index > keep && e.Index <= newLast:
			sawNew = true
		case e.Term == 1 && !sawNew && (e.Index <= keep || e.Index <= oldLast):
			if e.Index > keep && len(es) > int(oldLast) {
				t.Fatalf("old record %d in a log longer than the old one", e.Index)
			}
		default:
			t.Fatalf("entry %d (term %d) after new records: the log mixes the old suffix with the new one", e.Index, e.Term)
		}
		if !bytes.Equal(e.Data, termData(e.Index, e.Term)) {
			t.Fatalf("entry %d: data %q", e.Index, e.Data)
		}
	}
	if sawNew {
		for _, e := range es[keep:] {
			if e.Term != 2 {
				t.Fatalf("entry %d is from the old suffix after the cut", e.Index)
			}
		}
	}
	return uint64(len(es))
}

// TestTruncateAfterCrash crashes the truncate-and-append path at every sync
// (keeping exactly the synced state, or a random prefix of the unsynced
// operations with a torn last write) and checks that the log then opens and
// never mixes the cut suffix with the records that replace it.
func TestTruncateAfterCrash(t *testing.T) {
	for _, keep := range []uint64{3, 30} {
		probe := vfs.NewMem()
		truncateAndAppend(t, probe, 60, keep, 12)
		syncs := probe.SyncCount()
		rng := rand.New(rand.NewPCG(uint64(keep), 7))
		for n := int64(1); n <= syncs; n++ {
			fs := vfs.NewMem()
			var images []*vfs.MemFS
			fs.SetSyncHook(func(c int64) {
				if c == n {
					images = append(images, fs.CrashClone(vfs.CrashOptions{}),
						fs.CrashClone(vfs.CrashOptions{Rand: rng, TearLast: true}))
				}
			})
			truncateAndAppend(t, fs, 60, keep, 12)
			for i, img := range images {
				l, err := Open(Options{FS: img, Dir: testDir, SegmentSize: 1024, RepairTail: true})
				if err != nil {
					t.Fatalf("keep %d, crash at sync %d (image %d): open: %v", keep, n, i, err)
				}
				l.Close()
				checkCutLog(t, img, keep, keep+12, 60)
			}
		}
	}
}

// TestEnqueueBatchAtOneSync checks that the records of one EnqueueBatchAt
// share one write and one fsync: enqueued one by one, the first woke the
// flusher, which could take the buffer before the rest were in (a raft
// Ready split over two fsyncs, the second waiting for the first).
func TestEnqueueBatchAtOneSync(t *testing.T) {
	const batches, per = 400, 128
	var mu sync.Mutex
	var syncs []int
	dir := t.TempDir() // a real file system: its fsync gives the flusher time to wake
	l := mustOpen(t, Options{FS: vfs.Default, Dir: dir, SegmentSize: 16 << 20, NoGather: true,
		OnSync: func(s SyncStats) { mu.Lock(); syncs = append(syncs, s.Records); mu.Unlock() }})
	defer l.Close()
	next := uint64(1)
	for range batches {
		recs := make([]Entry, per)
		for i := range recs {
			recs[i] = Entry{Index: next, Term: 1, Type: format.FrameWALRaft, Data: termData(next, 1)}
			next++
		}
		p, err := l.EnqueueBatchAt(recs)
		if err != nil {
			t.Fatalf("EnqueueBatchAt from %d: %v", recs[0].Index, err)
		}
		if p.Index() != next-1 {
			t.Fatalf("the Pending is of record %d, want %d", p.Index(), next-1)
		}
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	split := 0
	for _, n := range syncs {
		if n != per {
			split++
		}
	}
	if split > 0 {
		t.Fatalf("%d of %d fsyncs did not carry exactly one batch of %d records (%d fsyncs for %d batches)", split, len(syncs), per, len(syncs), batches)
	}
	es, err := readAll(vfs.Default, dir, 1)
	if err != nil || len(es) != batches*per {
		t.Fatalf("read back %d records, err %v", len(es), err)
	}
	for _, e := range es {
		if !bytes.Equal(e.Data, termData(e.Index, 1)) {
			t.Fatalf("record %d: %q", e.Index, e.Data)
		}
	}
}

// TestEnqueueBatchAtChecks checks what EnqueueBatchAt refuses (a gap, a
// term going back, a record too large) and that records beyond the batch
// limit go on in later batches, in order.
func TestEnqueueBatchAtChecks(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, Options{FS: fs, Dir: testDir, SegmentSize: 64 << 20, Term: 2})
	defer l.Close()
	if p, err := l.EnqueueBatchAt(nil); p != nil || err != nil {
		t.Fatalf("no records: %v, %v", p, err)
	}
	for _, recs := range [][]Entry{
		{{Index: 2, Term: 2, Type: format.FrameWALRaft, Data: []byte("x")}},
		{{Index: 1, Term: 1, Type: format.FrameWALRaft, Data: []byte("x")}},
	} {
		if _, err := l.EnqueueBatchAt(recs); !errors.Is(err, ErrNotNext) {
			t.Errorf("EnqueueBatchAt(%+v) = %v, want ErrNotNext", recs, err)
		}
	}
	if _, err := l.EnqueueBatchAt([]Entry{{Index: 1, Term: 2, Type: format.FrameWALRaft, Data: make([]byte, maxData+1)}}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a record too large: %v, want ErrTooLarge", err)
	}
	// More than one batch's worth: 3 x 2 MiB with a 4 MiB limit.
	big := bytes.Repeat([]byte("b"), 2<<20)
	recs := []Entry{{1, 2, format.FrameWALRaft, big}, {2, 2, format.FrameWALRaft, big}, {3, 3, format.FrameWALRaft, big}}
	p, err := l.EnqueueBatchAt(recs)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if l.DurableIndex() != 3 {
		t.Fatalf("durable index %d, want 3", l.DurableIndex())
	}
	es, err := readAll(fs, testDir, 1)
	if err != nil || len(es) != 3 || es[2].Term != 3 || !bytes.Equal(es[1].Data, big) {
		t.Fatalf("read back %d records, err %v", len(es), err)
	}
}

// TestCallerFlush: in a log with CallerFlush a record does not wake the
// flusher; Wait writes and syncs it on the caller's goroutine, Wake hands
// it to the flusher, a full batch still goes to the flusher (an appender
// waiting for room is not left waiting), and Close writes what is left;
// Wake and Flush take turns without a data race.
// Each fsync records the function it ran under.
func TestCallerFlush(t *testing.T) {
	var mu sync.Mutex
	var where []string
	onSync := func(SyncStats) {
		stack := goroutineStack()
		w := "elsewhere"
		switch {
		case strings.Contains(stack, "segment.(*Pending).Wait"):
			w = "Wait"
		case strings.Contains(stack, "segment.(*Log).Flush"):
			w = "Flush"
		case strings.Contains(stack, "segment.(*Log).flushLoop"):
			w = "flusher"
		}
		mu.Lock()
		where = append(where, w)
		mu.Unlock()
	}
	fs := vfs.NewMem()
	opts := Options{FS: fs, Dir: testDir, SegmentSize: 64 << 20, NoGather: true, CallerFlush: true, OnSync: onSync}
	l := mustOpen(t, opts)
	rec := func(i uint64, n int) Entry {
		return Entry{Index: i, Term: 1, Type: format.FrameWALRaft, Data: bytes.Repeat([]byte{byte(i)}, n)}
	}
	p, err := l.EnqueueBatchAt([]Entry{rec(1, 10), rec(2, 10)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil || l.DurableIndex() != 2 {
		t.Fatalf("Wait: %v, durable index %d", err, l.DurableIndex())
	}
	if p, err = l.EnqueueBatchAt([]Entry{rec(3, 10)}); err != nil {
		t.Fatal(err)
	}
	l.Wake()
	<-p.Done()
	// 1 MiB records one at a time, nobody waiting: past 4 MiB, EnqueueAt
	// waits for room, and wakes the flusher for it.
	for i := uint64(4); i <= 12; i++ {
		if p, err = l.EnqueueAt(i, 1, format.FrameWALRaft, bytes.Repeat([]byte{byte(i)}, 1<<20)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a full batch written without a Wait", func() bool { return l.DurableIndex() >= 4 })
	// Wakes and Flushes in turn: under -race, the flusher's state (what
	// it paces and gathers by) must be the writer's, whichever writes.
	for i := uint64(13); i < 213; i++ {
		if _, err := l.EnqueueBatchAt([]Entry{rec(i, 10)}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			l.Wake()
		} else if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.EnqueueBatchAt([]Entry{rec(213, 10)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(); err != nil {
		t.Fatalf("Flush after Close, nothing left: %v", err)
	}
	es, err := readAll(fs, testDir, 1)
	if err != nil || len(es) != 213 {
		t.Fatalf("read back %d records, err %v", len(es), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(where) < 4 || where[0] != "Wait" || where[1] != "flusher" || slices.Contains(where, "elsewhere") {
		t.Fatalf("the fsyncs ran in %v: want Wait, then the flusher (Wake, full batches), then Flush and the flusher", where)
	}
}

// TestCallerFlushOneBatchPerWake: in a log with CallerFlush, the flusher
// woken by Wake writes the batch it was handed and no more; a record
// enqueued while it writes is the appender's to write (its Wait writes it
// on the appender's goroutine) instead of being taken by the flusher
// going round again, which would have the appender wait for the flusher
// after all. The flusher is held inside its write (OnDurable) until the
// second record is in.
func TestCallerFlushOneBatchPerWake(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	flusherWrote := map[uint64]bool{}
	onDurable := func(index uint64) {
		inFlusher := strings.Contains(goroutineStack(), "segment.(*Log).flushLoop")
		mu.Lock()
		flusherWrote[index] = inFlusher
		mu.Unlock()
		if index == 1 {
			close(entered)
			<-release
		}
	}
	l := mustOpen(t, Options{FS: vfs.NewMem(), Dir: testDir, SegmentSize: 1 << 20, NoGather: true, CallerFlush: true, OnDurable: onDurable})
	defer l.Close()
	rec := func(i uint64) Entry { return Entry{Index: i, Term: 1, Type: format.FrameWALRaft, Data: []byte("v")} }
	p1, err := l.EnqueueBatchAt([]Entry{rec(1)})
	if err != nil {
		t.Fatal(err)
	}
	l.Wake()
	<-entered // the flusher is writing record 1
	p2, err := l.EnqueueBatchAt([]Entry{rec(2)})
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := p1.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := p2.Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !flusherWrote[1] || flusherWrote[2] {
		t.Fatalf("record 1 written by the flusher: %v, record 2: %v; want the flusher to write only record 1 (the batch Wake handed it)",
			flusherWrote[1], flusherWrote[2])
	}
}

// goroutineStack returns the calling goroutine's stack, for a test that
// checks which function a callback ran under.
func goroutineStack() string {
	buf := make([]byte, 64<<10)
	return string(buf[:runtime.Stack(buf, false)])
}
