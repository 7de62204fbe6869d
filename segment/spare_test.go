package segment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// spareFiles matches the temporary files segments are prepared in.
const spareFiles = ".tmp-"

// appendUntilNoSpace appends records of size bytes until one is refused,
// and returns the acknowledged indexes and the refusal. The log must stay
// healthy and must not give the refused record an index.
func appendUntilNoSpace(t *testing.T, l *Log, size, limit int) ([]uint64, error) {
	t.Helper()
	var acked []uint64
	for range limit {
		last := l.LastIndex()
		i, err := l.Append(format.FrameWALTxn, make([]byte, size))
		if err != nil {
			if l.LastIndex() != last || l.Err() != nil {
				t.Fatalf("a refused append moved the last index (%d to %d) or failed the log (%v)", last, l.LastIndex(), l.Err())
			}
			return acked, err
		}
		acked = append(acked, i)
	}
	t.Fatalf("%d appends of %d bytes all succeeded: the disk never filled", limit, size)
	return nil, nil
}

// checkNoSpace checks the error writes get on a full disk: ErrNoSpace,
// wrapping the file system's ENOSPC, naming the directory and the bytes
// the next segment needs.
func checkNoSpace(t *testing.T, err error, dir string, size int64) {
	t.Helper()
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrFailed) ||
		!strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), fmt.Sprint(size)) {
		t.Fatalf("append on a full disk: %v; want ErrNoSpace wrapping ENOSPC, naming %s and %d bytes", err, dir, size)
	}
}

// resume waits until an append of size bytes (one that needs the next
// segment) succeeds again, with no restart.
func resume(t *testing.T, l *Log, size int) uint64 {
	t.Helper()
	var idx uint64
	waitFor(t, "appends to succeed once space exists", func() bool {
		i, err := l.Append(format.FrameWALTxn, make([]byte, size))
		if err != nil && !errors.Is(err, ErrNoSpace) {
			t.Fatalf("append after space was freed: %v", err)
		}
		idx = i
		return err == nil
	})
	return idx
}

// TestNoSpaceForNextSegment: the disk fills up (every preallocation of a
// new segment fails with ENOSPC). That is not a failed log: nothing was
// written after the last fsync. Appends that fit the active segment's
// preallocated space go on; the first that needs the next segment fails
// with ErrNoSpace and takes no index; reads go on; and once space exists
// appends succeed again, with no restart. Everything acknowledged is in a
// crash image.
func TestNoSpaceForNextSegment(t *testing.T) {
	mem := vfs.NewMem()
	var full atomic.Bool
	inj := vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if full.Load() && op == vfs.OpPreallocate && strings.Contains(path, spareFiles) {
			return syscall.ENOSPC
		}
		return nil
	})
	l := mustOpen(t, memOpts(vfs.NewErrorFS(mem, inj), 4096))
	defer l.Close()
	appendN(t, l, 5)
	full.Store(true)
	acked, err := appendUntilNoSpace(t, l, 100, 1000)
	checkNoSpace(t, err, testDir, 4096)
	if err := l.Rotate(); !errors.Is(err, ErrNoSpace) || l.Err() != nil {
		t.Fatalf("Rotate on a full disk: %v (log: %v)", err, l.Err())
	}
	r, err := l.NewReader(1) // reads go on
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; ; n++ {
		if _, err := r.Next(); err != nil {
			break
		}
	}
	r.Close()
	if want := 5 + len(acked); n != want {
		t.Fatalf("read %d records while the disk was full, want %d", n, want)
	}

	full.Store(false)
	last := resume(t, l, 100)
	appendN(t, l, 100) // across rotations
	img := mem.CrashClone(vfs.CrashOptions{})
	es, err := readAll(img, testDir, 0)
	if err != nil || uint64(len(es)) != last+100 {
		t.Fatalf("crash image: %d records, %v; want %d", len(es), err, last+100)
	}
}

// TestRotationDoesNotWaitForPreallocation blocks every preparation of a
// new segment: appends that rotate into the spare prepared in advance
// still complete.
func TestRotationDoesNotWaitForPreallocation(t *testing.T) {
	mem := vfs.NewMem()
	block := make(chan struct{})
	var blocking atomic.Bool
	inj := vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpPreallocate && blocking.Load() && strings.Contains(path, spareFiles) {
			<-block
		}
		return nil
	})
	l := mustOpen(t, memOpts(vfs.NewErrorFS(mem, inj), 4096))
	waitSpare(t, l)
	blocking.Store(true)
	done := make(chan error)
	go func() {
		segs := len(l.Segments())
		for len(l.Segments()) == segs {
			if _, err := l.Append(format.FrameWALTxn, make([]byte, 200)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := <-done; err != nil { // a hang here is the failure: rotation waited for the allocation
		t.Fatal(err)
	}
	close(block)
	l.Close()
}

// TestNoSpaceOnTmpfs fills a real (tmpfs) file system: the same as
// TestNoSpaceForNextSegment with the kernel's ENOSPC. It needs permission
// to mount.
func TestNoSpaceOnTmpfs(t *testing.T) {
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount an 8 MiB tmpfs on %s (%v): this test needs root or CAP_SYS_ADMIN", mnt, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	const segSize = 1 << 20
	dir := filepath.Join(mnt, "wal")
	l := mustOpen(t, Options{Dir: dir, SegmentSize: segSize, StoreID: testStore})
	t.Cleanup(func() { l.Close() }) // before the unmount
	waitSpare(t, l)
	ballast := filepath.Join(mnt, "ballast")
	fill(t, ballast)
	acked, err := appendUntilNoSpace(t, l, 4000, 10000)
	checkNoSpace(t, err, dir, segSize)
	if len(acked) == 0 {
		t.Fatal("no append fit in the space already preallocated")
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	last := resume(t, l, 4000)
	for range 300 { // into the next segment and the one after
		if _, err := l.Append(format.FrameWALTxn, make([]byte, 4000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(vfs.Default, dir, VerifyOptions{})
	if err != nil || !rep.OK() || rep.LastIndex != last+300 || !rep.Closed || len(rep.Segments) < 4 {
		t.Fatalf("after the disk was full: %v %+v", err, rep)
	}
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	for k := len(buf) / 2; k > 0; k /= 2 { // and the last few blocks
		if _, err := f.Write(buf[:k]); err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatal(err)
		}
	}
}

// TestLazySpare: a log opened with LazySpare prepares no spare while its
// active segment is less than half full (a joining member's logs and a
// transfer's tail, which SkipTo or the cutover throw away unused), has
// one ready once it is half full, before any record needs it, and
// rotates and skips as any log does.
func TestLazySpare(t *testing.T) {
	const segSize = 64 << 10
	mem := vfs.NewMem()
	eager := mustOpen(t, memOpts(mem, segSize))
	eager.mu.Lock()
	due := eager.spareDue()
	eager.mu.Unlock()
	eager.Close()
	if !due {
		t.Fatal("a log opened without LazySpare does not want its spare at once")
	}

	mem = vfs.NewMem()
	opts := memOpts(mem, segSize)
	opts.LazySpare = true
	l := mustOpen(t, opts)
	appendN(t, l, 3)
	l.mu.Lock()
	due, off := l.spareDue(), l.activeOff
	l.mu.Unlock()
	if due {
		t.Fatalf("a lazy log with %d of %d bytes written wants a spare", off, segSize)
	}
	for {
		l.mu.Lock()
		off = l.activeOff
		l.mu.Unlock()
		if off >= segSize/2 {
			break
		}
		appendN(t, l, 1)
	}
	waitFor(t, "the spare of a half-full lazy log", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.ready != nil
	})
	first := l.LastIndex()
	for len(l.Segments()) < 4 {
		appendN(t, l, 50)
	}
	last := l.LastIndex()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	es, err := readAll(mem, testDir, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, es, 1, last)
	if last <= first {
		t.Fatalf("no record after the half-full mark (%d..%d)", first, last)
	}

	// SkipTo with no spare ready prepares one itself.
	mem = vfs.NewMem()
	l = mustOpen(t, Options{FS: mem, Dir: testDir, SegmentSize: segSize, StoreID: testStore, LazySpare: true})
	appendN(t, l, 1)
	if err := l.SkipTo(100); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	es, err = readAll(mem, testDir, 100)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, es, 100, 101)
}
