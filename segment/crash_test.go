package segment

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// workerPayload is record seq of worker w: it names its writer and is
// checkable on its own, so a record read after a crash can be told whole.
func workerPayload(w, seq int) []byte {
	n := 8 + (w*131+seq*17)%300
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b, uint32(w))
	binary.LittleEndian.PutUint32(b[4:], uint32(seq))
	for i := 8; i < n; i++ {
		b[i] = byte(w ^ seq ^ i)
	}
	return b
}

func checkWorkerPayload(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	w, seq := int(binary.LittleEndian.Uint32(b)), int(binary.LittleEndian.Uint32(b[4:]))
	return bytes.Equal(b, workerPayload(w, seq))
}

// ack is an append that returned nil.
type ack struct {
	index uint64
	data  []byte
}

// crashImage is a crash image and how many acks were given before it.
type crashImage struct {
	fs    *vfs.MemFS
	acked int
	what  string
}

// crashRun runs workers appending concurrently on a log with small segments
// and collects crash images: at every sync boundary (exactly the synced
// state, and a random prefix of unsynced writes with a torn last one) and
// at random instants between syncs.
func crashRun(t *testing.T, workers, per int, seed uint64) ([]crashImage, []ack) {
	fs := vfs.NewMem()
	wfs := &writeHookFS{FS: fs}
	l := mustOpen(t, memOpts(wfs, 4096))
	var (
		mu     sync.Mutex
		acks   []ack
		images []crashImage
	)
	nAcked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acks)
	}
	hookRand := rand.New(rand.NewPCG(seed, 1))
	fs.SetSyncHook(func(n int64) { // hooks are serialized: hookRand needs no lock
		k := nAcked()
		exact := fs.CrashClone(vfs.CrashOptions{})
		torn := fs.CrashClone(vfs.CrashOptions{Rand: hookRand, TearLast: true})
		mu.Lock()
		images = append(images, crashImage{exact, k, "sync"}, crashImage{torn, k, "sync+torn"})
		mu.Unlock()
	})
	writeRand := rand.New(rand.NewPCG(seed, 3))
	var writeMu sync.Mutex // the flusher and the spare worker both write
	afterWrite := func() { // after every write, before its sync: torn writes
		k := nAcked()
		writeMu.Lock()
		img := fs.CrashClone(vfs.CrashOptions{Rand: writeRand, TearLast: true})
		writeMu.Unlock()
		mu.Lock()
		images = append(images, crashImage{img, k, "write+torn"})
		mu.Unlock()
	}
	wfs.hook.Store(&afterWrite)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // crashes between syncs
		r := rand.New(rand.NewPCG(seed, 2))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(r.IntN(300)) * time.Microsecond):
			}
			k := nAcked()
			img := fs.CrashClone(vfs.CrashOptions{Rand: r, TearLast: true})
			mu.Lock()
			images = append(images, crashImage{img, k, "random"})
			mu.Unlock()
		}
	})
	var writers sync.WaitGroup
	for w := range workers {
		writers.Go(func() {
			for seq := range per {
				data := workerPayload(w, seq)
				i, err := l.Append(format.FrameWALTxn, data)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acks = append(acks, ack{i, data})
				mu.Unlock()
			}
		})
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	fs.SetSyncHook(nil)
	wfs.hook.Store(nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return images, acks
}

// recoverImage opens a crash image with RepairTail and checks it: every
// acknowledged append is present, indexes are contiguous, every record is
// whole, and a second open finds nothing more to do. It returns the log's
// last index and whether a tail was cut.
func recoverImage(t *testing.T, img crashImage, acks []ack) (uint64, bool) {
	t.Helper()
	opts := memOpts(img.fs, 4096)
	opts.RepairTail = true
	l, err := Open(opts)
	if err != nil {
		t.Fatalf("%s image: Open: %v", img.what, err)
	}
	last, cut := l.LastIndex(), l.TailCut() != nil
	l.Close()
	es, err := readAll(img.fs, testDir, 0)
	if err != nil {
		t.Fatalf("%s image: read: %v", img.what, err)
	}
	if len(es) > 0 && (es[0].Index != 1 || es[len(es)-1].Index != last) {
		t.Fatalf("%s image: entries %d..%d, log last %d", img.what, es[0].Index, es[len(es)-1].Index, last)
	}
	for _, a := range acks[:img.acked] {
		if a.index > uint64(len(es)) || !bytes.Equal(es[a.index-1].Data, a.data) {
			t.Fatalf("%s image: acknowledged record %d lost (log ends at %d)", img.what, a.index, last)
		}
	}
	for _, e := range es {
		if !checkWorkerPayload(e.Data) {
			t.Fatalf("%s image: record %d is not whole", img.what, e.Index)
		}
	}
	l = mustOpen(t, opts) // recovery is idempotent
	if l.TailCut() != nil || l.LastIndex() != last {
		t.Fatalf("%s image: second open cut %+v, last %d (was %d)", img.what, l.TailCut(), l.LastIndex(), last)
	}
	appendN(t, l, 1) // and the log goes on
	l.Close()
	if rep, err := Verify(img.fs, testDir, VerifyOptions{}); err != nil || !rep.OK() || rep.LastIndex != last+1 {
		t.Fatalf("%s image: Verify after recovery: %v\n%s", img.what, err, problemsString(rep.Problems))
	}
	return last, cut
}

func TestCrashAtEverySync(t *testing.T) {
	images, acks := crashRun(t, 8, 60, 1)
	counts := map[string]int{}
	var cuts, beyond int
	for _, img := range images {
		counts[img.what]++
		last, cut := recoverImage(t, img, acks)
		if cut {
			cuts++
		}
		if img.acked > 0 && last > maxAcked(acks[:img.acked]) {
			beyond++
		}
	}
	t.Logf("%d acks; images: %v; %d with a torn tail cut, %d holding unacknowledged records", len(acks), counts, cuts, beyond)
	if counts["sync"] < 50 || cuts == 0 {
		t.Fatalf("the run did not exercise enough: %v images, %d cuts", counts, cuts)
	}
}

func maxAcked(acks []ack) uint64 {
	var m uint64
	for _, a := range acks {
		m = max(m, a.index)
	}
	return m
}

// TestCrashDuringRecovery crashes at every sync of an Open that cuts a torn
// tail: each of those images must recover as well.
func TestCrashDuringRecovery(t *testing.T) {
	images, acks := crashRun(t, 4, 40, 2)
	var tested atomic.Int64
	for _, img := range images {
		if img.what == "sync" || tested.Load() >= 10 {
			continue
		}
		probe := img.fs.CrashClone(vfs.CrashOptions{})
		if _, err := Open(memOpts(probe, 4096)); err == nil {
			continue // no torn tail in this one
		}
		tested.Add(1)
		var during []crashImage
		img.fs.SetSyncHook(func(int64) {
			during = append(during, crashImage{img.fs.CrashClone(vfs.CrashOptions{}), img.acked, "during recovery"})
		})
		opts := memOpts(img.fs, 4096)
		opts.RepairTail = true
		l := mustOpen(t, opts)
		l.Close()
		img.fs.SetSyncHook(nil)
		recoverImage(t, img, acks)
		for _, d := range during {
			recoverImage(t, d, acks)
		}
	}
	if tested.Load() == 0 {
		t.Fatal("no image had a torn tail")
	}
}

// writeHookFS calls hook after every WriteAt of a file it opened, so a test
// can take a crash image while the write is not yet synced. The hook is set
// before the writes start and cleared after they stop.
type writeHookFS struct {
	vfs.FS
	hook atomic.Pointer[func()]
}

type writeHookFile struct {
	vfs.File
	fs *writeHookFS
}

func (w *writeHookFS) Create(name string) (vfs.File, error) {
	f, err := w.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return writeHookFile{f, w}, nil
}

func (w *writeHookFS) OpenReadWrite(name string) (vfs.File, error) {
	f, err := w.FS.OpenReadWrite(name)
	if err != nil {
		return nil, err
	}
	return writeHookFile{f, w}, nil
}

func (f writeHookFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	if h := f.fs.hook.Load(); h != nil {
		(*h)()
	}
	return n, err
}
