package transfer

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/xfertest"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/vfs"
)

// TestCrashReceiver runs a transfer into a MemFS, taking a crash image at
// every sync (synced state only, and a random partial persistence of the
// unsynced changes with a torn last write), and recovers from each: an
// image with a manifest must open as the complete store; any other must
// resume, from the chunks it recorded, and complete.
func TestCrashReceiver(t *testing.T) {
	src := newMemSource(t, 400, 3)
	if _, err := src.snapshot(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		src.append(fmt.Sprintf("t:%d", i), []byte("tail entry"))
	}
	const dir = "/data"
	mem := vfs.NewMem()
	var mu sync.Mutex
	var images []*vfs.MemFS
	r := rand.New(rand.NewPCG(1, 2))
	mem.SetSyncHook(func(n int64) {
		mu.Lock()
		defer mu.Unlock()
		images = append(images, mem.CrashClone(vfs.CrashOptions{}), mem.CrashClone(vfs.CrashOptions{Rand: r, TearLast: true}))
	})
	sopts, ropts := smallOpts(dir)
	ropts.FS = mem
	if o := transferOnce(t, src, sopts, ropts, nil, nil); o.recvErr != nil {
		t.Fatal(o.recvErr)
	}
	mem.SetSyncHook(nil)
	t.Logf("%d crash images", len(images))
	for i, img := range images {
		t.Run(fmt.Sprintf("image%d", i), func(t *testing.T) { recoverImage(t, img, dir, src) })
	}
}

func recoverImage(t *testing.T, img *vfs.MemFS, dir string, src *memSource) {
	if _, err := manifest.Load(img, dir); err == nil {
		if got := checkInstalled(t, img, dir, src); got != src.LastIndex() {
			t.Fatalf("a published manifest opens at %d, want the whole tail to %d", got, src.LastIndex())
		}
		// A catch-up session finds nothing to send and clears what the
		// interrupted cutover left.
		op := &replicaOpener{xfertest.Replicas{FS: img, Dir: dir}}
		sopts, ropts := smallOpts(dir)
		ropts.FS, ropts.Open = img, op.open
		o := transferOnce(t, src, sopts, ropts, nil, nil)
		op.store().Close()
		if o.recvErr != nil || !o.recv.TailOnly {
			t.Fatalf("catch-up after the cutover: %+v %v", o.recv, o.recvErr)
		}
		if names, _ := img.List(filepath.Join(dir, format.TransferDir)); len(names) != 0 {
			t.Fatalf("transfer area left behind: %v", names)
		}
		return
	}
	held := uint64(0)
	if p, err := findPartial(img, dir); err != nil {
		t.Fatalf("reading the partial transfer: %v", err)
	} else if p != nil {
		held = p.firstMissing
		p.close()
	}
	sopts, ropts := smallOpts(dir)
	ropts.FS = img
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if o.recvErr != nil {
		t.Fatalf("recovery: %v", o.recvErr)
	}
	if held > 0 && (!o.recv.Resumed || o.recv.ResumeFrom != held) {
		t.Fatalf("%d chunks were durable, the recovery %+v", held, o.recv)
	}
	checkInstalled(t, img, dir, src)
	if names, _ := img.List(filepath.Join(dir, format.TransferDir)); len(names) != 0 {
		t.Fatalf("transfer area left behind: %v", names)
	}
}
