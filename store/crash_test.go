package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvtool/kvtool/vfs"
)

// crashImage is a crash clone of the file system together with the
// transfers that were acknowledged before it was taken.
type crashImage struct {
	at    int64
	what  string // the step running when it was taken, if any
	fs    *vfs.MemFS
	acked []string
}

// TestCrashBank runs the bank workload on the crash-simulating file system,
// takes crash images at sync boundaries from inside the workload (some with
// unsynced writes partly kept and the last write torn), and checks every
// image: recovery succeeds and is idempotent, every acknowledged transfer is
// present, and the balances are exactly what the transfers present imply —
// so no transaction is ever partly visible.
func TestCrashBank(t *testing.T) {
	// Half the images are taken just before an fsync, half just after. At
	// least minTornImages of the first kind are always taken, whatever
	// KVTOOL_CRASH_IMAGES says, so that the torn-tail check below always
	// runs on enough images to be meaningful.
	const minTornImages = 20
	images := 40
	if v, err := strconv.Atoi(os.Getenv("KVTOOL_CRASH_IMAGES")); err == nil && v > 0 {
		images = v
	}
	perKind := max(images/2, minTornImages)
	m := vfs.NewMem()
	var mu sync.Mutex
	var acked []string
	var taken []crashImage
	var tornCandidates, beforeCalls int
	rng := rand.New(rand.NewPCG(1, 2))
	take := func(n int64, before bool) {
		mu.Lock()
		defer mu.Unlock()
		// Images taken just before an fsync hold a written but unsynced
		// batch: with random partial persistence and a torn last write they
		// exercise torn-tail recovery. Images taken just after one hold
		// exactly what was durable. One fsync acknowledges at most one
		// transfer per writer, so the workload makes at least 60 fsyncs
		// however the scheduler batches them: taking every second one
		// before the fsync reaches minTornImages.
		opts := vfs.CrashOptions{}
		if before {
			beforeCalls++
			if tornCandidates >= perKind || beforeCalls%2 != 0 {
				return
			}
			tornCandidates++
			opts = vfs.CrashOptions{Rand: rand.New(rand.NewPCG(uint64(n), 9)), TearLast: true}
		} else if len(taken)-tornCandidates >= perKind || rng.IntN(3) != 0 {
			return
		}
		taken = append(taken, crashImage{at: n, fs: m.CrashClone(opts), acked: append([]string(nil), acked...)})
	}
	var armed atomic.Bool
	fsys := vfs.NewErrorFS(m, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if armed.Load() && op == vfs.OpSync {
			take(m.SyncCount(), true)
		}
		return nil
	}))
	s, err := Open(Options{FS: fsys, Dir: "/data", Create: true, SegmentSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	initBank(t, s)
	m.SetSyncHook(func(n int64) {
		if armed.Load() {
			take(n, false)
		}
	})
	armed.Store(true)
	runBank(t, s, 8, 60, func(id string) {
		mu.Lock()
		acked = append(acked, id)
		mu.Unlock()
	})
	armed.Store(false)
	m.SetSyncHook(nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if tornCandidates < minTornImages {
		t.Fatalf("only %d crash images taken before an fsync, want at least %d: the workload made too few syncs to test torn-tail recovery", tornCandidates, minTornImages)
	}
	torn := 0
	for _, img := range taken {
		t.Run(fmt.Sprintf("sync%d", img.at), func(t *testing.T) {
			if checkCrashImage(t, img) {
				torn++
			}
		})
	}
	t.Logf("%d crash images (%d taken before an fsync), %d needed a torn tail cut", len(taken), tornCandidates, torn)
	if torn == 0 {
		t.Errorf("none of %d crash images taken before an fsync had a torn tail: the test does not exercise tail repair", tornCandidates)
	}
}

// checkCrashImage recovers one image and checks it; it reports whether
// recovery had to cut a torn tail.
func checkCrashImage(t *testing.T, img crashImage) bool {
	s, err := Open(Options{FS: img.fs, Dir: "/data"})
	if err != nil {
		t.Fatalf("recovery failed: %v", err)
	}
	cut := s.Log().TailCut() != nil
	snap := s.Snapshot()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range img.acked {
		if _, ok := snap.Get("xfer:" + id); !ok {
			t.Fatalf("acknowledged transfer %s lost (recovered to index %d)", id, snap.Index())
		}
	}
	if err := checkBalancesMatchTransfers(snap); err != nil {
		t.Fatal(err)
	}
	// Recovery is idempotent: opening the recovered directory again gives
	// the same state.
	s2, err := Open(Options{FS: img.fs, Dir: "/data"})
	if err != nil {
		t.Fatalf("second recovery failed: %v", err)
	}
	defer s2.Close()
	if got := s2.Snapshot(); got.Index() != snap.Index() || got.Hash() != snap.Hash() {
		t.Fatalf("second recovery: index %d hash %x, first %d %x", got.Index(), got.Hash(), snap.Index(), snap.Hash())
	}
	return cut
}

// checkBalancesMatchTransfers recomputes every balance from the transfer
// records present in snap. A transaction applied in part would leave a
// record without its balance changes, or the reverse.
func checkBalancesMatchTransfers(snap *Snapshot) error {
	if snap.Len() == 0 {
		return nil // crashed before the bank was created
	}
	want := make([]int64, bankAccounts)
	for i := range want {
		want[i] = bankInitial
	}
	var bad error
	snap.Scan(ScanOptions{Prefix: "xfer:"}, func(k string, v []byte) bool {
		var a, b int
		var amt int64
		if _, err := fmt.Sscanf(strings.TrimSpace(string(v)), "%d,%d,%d", &a, &b, &amt); err != nil {
			bad = fmt.Errorf("%s = %q: %v", k, v, err)
			return false
		}
		want[a] -= amt
		want[b] += amt
		return true
	})
	if bad != nil {
		return bad
	}
	for i, w := range want {
		v, _ := snap.Get(acct(i))
		if string(v) != strconv.FormatInt(w, 10) {
			return fmt.Errorf("index %d: %s = %q, transfers present imply %d", snap.Index(), acct(i), v, w)
		}
	}
	return checkBank(snap)
}
