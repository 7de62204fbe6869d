package segment

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

func TestRoundTripAcrossRotations(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 4096))
	appendN(t, l, 2000)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs := l.Segments() // after Close: its clean-shutdown record is data too
	if len(segs) < 20 {
		t.Fatalf("only %d segments after 2000 records of 4 KiB segments", len(segs))
	}
	es, err := readAll(fs, testDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, es, 1, 2000)
	listed, err := List(fs, testDir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(listed, segs) {
		t.Fatalf("List and Log.Segments differ:\n%v\n%v", listed, segs)
	}
	var records int64
	for i, s := range segs {
		records += s.Records
		if s.Size > 4096 {
			t.Errorf("segment %s holds %d bytes, more than the segment size", s.Name, s.Size)
		}
		if i > 0 && s.FirstIndex != segs[i-1].LastIndex+1 {
			t.Errorf("segment %s starts at %d after %d", s.Name, s.FirstIndex, segs[i-1].LastIndex)
		}
	}
	if records != 2000 {
		t.Fatalf("segments hold %d records, want 2000", records)
	}
	rep, err := Verify(fs, testDir, VerifyOptions{})
	if err != nil || !rep.OK() || rep.Records != 2000 || rep.FirstIndex != 1 || rep.LastIndex != 2000 {
		t.Fatalf("Verify: %v %+v\n%s", err, rep, problemsString(rep.Problems))
	}
}

func TestReaderFrom(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 1024))
	appendN(t, l, 300)
	segs := l.Segments()
	l.Close()
	froms := []uint64{0, 1, 2, 150, 299, 300, 301, 1000}
	for _, s := range segs { // every segment boundary
		froms = append(froms, s.FirstIndex, s.FirstIndex+1, s.LastIndex)
	}
	for _, from := range froms {
		es, err := readAll(fs, testDir, from)
		if err != nil {
			t.Fatalf("from %d: %v", from, err)
		}
		first := max(from, 1)
		if first > 300 {
			if len(es) != 0 {
				t.Fatalf("from %d: read %d entries past the end", from, len(es))
			}
			continue
		}
		checkEntries(t, es, first, 300)
	}
}

func TestReopenContinues(t *testing.T) {
	fs := vfs.NewMem()
	opts := memOpts(fs, 2048)
	l := mustOpen(t, opts)
	appendN(t, l, 50)
	l.Close()
	for round := range 3 {
		l = mustOpen(t, opts)
		if l.LastIndex() != uint64(50*(round+1)) || l.DurableIndex() != l.LastIndex() {
			t.Fatalf("reopen %d: last %d durable %d", round, l.LastIndex(), l.DurableIndex())
		}
		appendN(t, l, 50)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	es, err := readAll(fs, testDir, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, es, 1, 200)
	if rep, _ := Verify(fs, testDir, VerifyOptions{}); !rep.OK() {
		t.Fatal(problemsString(rep.Problems))
	}
}

func TestFirstIndexAndTerm(t *testing.T) {
	fs := vfs.NewMem()
	opts := memOpts(fs, 4096)
	opts.FirstIndex, opts.Term = 1000, 7
	l := mustOpen(t, opts)
	if l.FirstIndex() != 1000 || l.LastIndex() != 999 {
		t.Fatalf("first %d last %d", l.FirstIndex(), l.LastIndex())
	}
	if i, err := l.Append(format.FrameWALNoop, nil); err != nil || i != 1000 {
		t.Fatalf("Append: %d %v", i, err)
	}
	l.Close()
	opts.Term = 0 // adopt the log's term
	l = mustOpen(t, opts)
	if l.Term() != 7 {
		t.Fatalf("term %d, want 7", l.Term())
	}
	l.Close()
	opts.Term = 3
	if _, err := Open(opts); err == nil {
		t.Fatal("Open with a term below the log's accepted")
	}
	es, _ := readAll(fs, testDir, 0)
	if len(es) != 1 || es[0].Index != 1000 || es[0].Term != 7 || es[0].Type != format.FrameWALNoop || len(es[0].Data) != 0 {
		t.Fatalf("entries %+v", es)
	}
}

func TestStoreIDMismatch(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 4096))
	appendN(t, l, 3)
	l.Close()
	opts := memOpts(fs, 4096)
	opts.StoreID[0] ^= 1
	if _, err := Open(opts); !errors.Is(err, ErrStoreMismatch) {
		t.Fatalf("Open with another store ID: %v", err)
	}
	opts.StoreID = [16]byte{} // adopt
	l = mustOpen(t, opts)
	appendN(t, l, 1)
	l.Close()
}

func TestInvalidAppends(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 4096))
	defer l.Close()
	if _, err := l.Append(format.FrameBlock, nil); !errors.Is(err, ErrBadType) {
		t.Fatalf("bad type: %v", err)
	}
	if _, err := l.Append(0, nil); !errors.Is(err, ErrBadType) {
		t.Fatalf("type 0: %v", err)
	}
	if _, err := l.Enqueue(format.FrameWALTxn, make([]byte, maxData+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if l.LastIndex() != 0 {
		t.Fatalf("rejected appends used indexes: last %d", l.LastIndex())
	}
}

func TestRecordLargerThanSegment(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 1024))
	appendN(t, l, 3)
	big := bytes.Repeat([]byte("x"), 5000)
	i, err := l.Append(format.FrameWALTxn, big)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3)
	segs := l.Segments()
	l.Close()
	var alone bool
	for _, s := range segs {
		if s.FirstIndex == i && s.LastIndex == i {
			alone = true
		}
	}
	if !alone {
		t.Fatalf("the big record %d is not alone in a segment: %+v", i, segs)
	}
	es, err := readAll(fs, testDir, i)
	if err != nil || len(es) != 4 || !bytes.Equal(es[0].Data, big) {
		t.Fatalf("read back: %v, %d entries", err, len(es))
	}
}

func TestRotate(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 1<<20))
	if err := l.Rotate(); err != nil { // empty: nothing to do
		t.Fatal(err)
	}
	appendN(t, l, 5)
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := l.Rotate(); err != nil { // the new segment is empty
		t.Fatal(err)
	}
	appendN(t, l, 5)
	segs := l.Segments()
	if len(segs) != 2 || segs[0].LastIndex != 5 || segs[1].FirstIndex != 6 || segs[1].LastIndex != 10 {
		t.Fatalf("segments %+v", segs)
	}
	l.Close()
	if err := l.Rotate(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Rotate after Close: %v", err)
	}
	if _, err := l.Append(format.FrameWALNoop, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The sealed segment was trimmed to its data.
	fi, _ := fs.Stat(segPath(1))
	if fi.Size() != segs[0].Size {
		t.Fatalf("sealed segment is %d bytes, its data %d", fi.Size(), segs[0].Size)
	}
}

func TestDropBefore(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 1024))
	appendN(t, l, 200)
	segs := l.Segments()
	mid := segs[len(segs)/2]
	removed, err := l.DropBefore(mid.FirstIndex + 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != len(segs)/2 || removed[0] != segs[0].Path {
		t.Fatalf("removed %v, want the first %d segments", removed, len(segs)/2)
	}
	for _, p := range removed {
		if _, err := fs.Stat(p); !vfs.IsNotExist(err) {
			t.Fatalf("%s still exists", p)
		}
	}
	if l.FirstIndex() != mid.FirstIndex {
		t.Fatalf("first index %d, want %d", l.FirstIndex(), mid.FirstIndex)
	}
	// Never the active segment, even when every record is below index.
	if _, err := l.DropBefore(1 << 40); err != nil {
		t.Fatal(err)
	}
	left := l.Segments()
	if len(left) != 1 || left[0] != l.Segments()[0] || left[0].LastIndex != 200 {
		t.Fatalf("left %+v", left)
	}
	appendN(t, l, 10)
	l.Close()
	rep, err := Verify(fs, testDir, VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("Verify after drop: %v\n%s", err, problemsString(rep.Problems))
	}
	es, err := readAll(fs, testDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, es, left[0].FirstIndex, 210)
	l = mustOpen(t, memOpts(fs, 1024)) // the first segment links to a dropped one: fine
	l.Close()
}

// TestDropBeforeCrash crashes after every sync of DropBefore: the segments
// left are always a contiguous suffix that opens.
func TestDropBeforeCrash(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 1024))
	appendN(t, l, 200)
	var images []*vfs.MemFS
	fs.SetSyncHook(func(int64) { images = append(images, fs.CrashClone(vfs.CrashOptions{})) })
	if _, err := l.DropBefore(150); err != nil {
		t.Fatal(err)
	}
	fs.SetSyncHook(nil)
	l.Close()
	if len(images) < 2 {
		t.Fatalf("DropBefore synced %d times", len(images))
	}
	for k, img := range images {
		l := mustOpen(t, memOpts(img, 1024))
		first := l.FirstIndex()
		l.Close()
		es, err := readAll(img, testDir, 0)
		if err != nil {
			t.Fatalf("image %d: %v", k, err)
		}
		checkEntries(t, es, first, 200)
	}
}

func TestConcurrentAppendAndEnqueue(t *testing.T) {
	fs := vfs.NewMem()
	var mu sync.Mutex
	var durable []uint64
	opts := memOpts(fs, 8192)
	opts.OnDurable = func(last uint64) {
		mu.Lock()
		durable = append(durable, last)
		mu.Unlock()
	}
	l := mustOpen(t, opts)
	const workers, per = 16, 100
	got := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := range per {
				data := []byte{byte(w), byte(k)}
				if k%2 == 0 {
					i, err := l.Append(format.FrameWALTxn, data)
					if err != nil {
						t.Error(err)
						return
					}
					got[w] = append(got[w], i)
					continue
				}
				p, err := l.Enqueue(format.FrameWALTxn, data)
				if err != nil {
					t.Error(err)
					return
				}
				<-p.Done()
				if err := p.Wait(); err != nil || p.Index() > l.DurableIndex() {
					t.Errorf("Wait: %v, index %d durable %d", err, p.Index(), l.DurableIndex())
				}
				got[w] = append(got[w], p.Index())
			}
		})
	}
	wg.Wait()
	l.Close()
	if !slices.IsSorted(durable) || durable[len(durable)-1] != workers*per {
		t.Fatalf("OnDurable calls out of order or incomplete: %v", durable)
	}
	es, err := readAll(fs, testDir, 0)
	if err != nil || len(es) != workers*per {
		t.Fatalf("read %d: %v", len(es), err)
	}
	for w, idxs := range got {
		if !slices.IsSorted(idxs) {
			t.Fatalf("worker %d got indexes out of order", w)
		}
		for k, i := range idxs {
			if d := es[i-1].Data; d[0] != byte(w) || d[1] != byte(k) {
				t.Fatalf("index %d holds %v, want worker %d record %d", i, d, w, k)
			}
		}
	}
}

func TestLiveReader(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 2048))
	defer l.Close()
	appendN(t, l, 100)
	r, err := l.NewReader(90)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	appendN(t, l, 10) // after the reader's limit
	var es []Entry
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		e.Data = bytes.Clone(e.Data)
		es = append(es, e)
	}
	checkEntries(t, es, 90, 100)
}

// TestConcurrentMaintenance runs appends, rotations, drops, status calls and
// finally Close all at once (for the race detector), then checks the log.
func TestConcurrentMaintenance(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 2048))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				if _, err := l.Append(format.FrameWALTxn, payload(l.LastIndex())); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					return
				}
			}
		})
	}
	var maint sync.WaitGroup
	maint.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := l.Rotate(); err != nil {
				t.Error(err)
				return
			}
			if _, err := l.DropBefore(l.DurableIndex() / 2); err != nil {
				t.Error(err)
				return
			}
			_ = l.Segments()
			_ = l.FirstIndex()
		}
	})
	for l.DurableIndex() < 2000 {
		runtime.Gosched()
	}
	close(stop)
	maint.Wait()
	if err := l.Close(); err != nil { // while the appenders run
		t.Fatal(err)
	}
	wg.Wait()
	rep, err := Verify(fs, testDir, VerifyOptions{})
	if err != nil || !rep.OK() || rep.LastIndex != l.LastIndex() || rep.FirstIndex != l.FirstIndex() {
		t.Fatalf("Verify: %v, %+v\n%s", err, rep, problemsString(rep.Problems))
	}
}
