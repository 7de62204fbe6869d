package drill

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

var powerLoss = Drill{
	Name: "power-loss",
	Description: "crash the real store on a power-loss-simulating file system at every sync point of bank load with " +
		"rotation, checkpoints, deltas, merges and compaction (torn last writes too); recover and check each image",
	Run: runPowerLoss,
}

// The power-loss store: small segments so the load rotates often, few
// accounts so each image is checked quickly.
const (
	plDir         = "/data"
	plSegmentSize = 16 << 10
	plAccounts    = 10
	plInitial     = 1000
	plWorkers     = 4
)

// image is one crash point: what a machine would find on disk after losing
// power there, and what had been acknowledged by then.
type image struct {
	point  int64
	torn   bool // taken before a sync, keeping a random part of the unsynced writes with the last one torn
	during string
	fs     *vfs.MemFS
	rec    Record
}

func (img *image) label() string {
	kind := "after a sync"
	if img.torn {
		kind = "before a sync, torn"
	}
	return fmt.Sprintf("crash point %d (%s, during %s)", img.point, kind, img.during)
}

// explorer takes a crash image at every sync point and checks them on
// checker goroutines. The queue is bounded, so the workload runs only as
// fast as its crash points can be checked: no point is skipped.
type explorer struct {
	ctx    context.Context
	m      *vfs.MemFS
	bank   *Bank
	seed   uint64
	armed  atomic.Bool
	during atomic.Value // string: the maintenance step running, or "load"
	points atomic.Int64
	queue  chan *image
	wg     sync.WaitGroup

	mu       sync.Mutex
	checked  int
	tornN    int
	cuts     int
	failedN  int
	failures []string // the first few failed images
	lost     map[uint64]bool
	evidence *image // the first failed image
}

func newExplorer(ctx context.Context, m *vfs.MemFS, bank *Bank, seed uint64) *explorer {
	e := &explorer{ctx: ctx, m: m, bank: bank, seed: seed, queue: make(chan *image, 4), lost: map[uint64]bool{}}
	e.during.Store("setup")
	for range max(1, runtime.GOMAXPROCS(0)) {
		e.wg.Add(1)
		go e.checkLoop()
	}
	return e
}

// take is called at every sync point: before the sync (torn) from the
// error-injecting wrapper, after it from the MemFS sync hook.
func (e *explorer) take(torn bool) {
	if !e.armed.Load() {
		return
	}
	n := e.points.Add(1)
	opts := vfs.CrashOptions{}
	if torn {
		opts = vfs.CrashOptions{Rand: rand.New(rand.NewPCG(e.seed, uint64(n))), TearLast: true}
	}
	img := &image{point: n, torn: torn, during: e.during.Load().(string), rec: e.bank.All()}
	img.fs = e.m.CrashClone(opts)
	select {
	case e.queue <- img:
	case <-e.ctx.Done():
	}
}

func (e *explorer) checkLoop() {
	defer e.wg.Done()
	for img := range e.queue {
		if e.ctx.Err() != nil {
			continue
		}
		cut, lost, err := checkImage(e.ctx, img)
		e.mu.Lock()
		e.checked++
		if img.torn {
			e.tornN++
		}
		if cut {
			e.cuts++
		}
		for _, id := range lost {
			e.lost[id] = true
		}
		if err != nil {
			e.failedN++
			if len(e.failures) < 3 {
				e.failures = append(e.failures, fmt.Sprintf("%s: %v", img.label(), err))
			}
			if e.evidence == nil {
				e.evidence = img
			}
		}
		e.mu.Unlock()
	}
}

// finish stops taking images and waits until every one taken is checked.
func (e *explorer) finish() {
	e.armed.Store(false)
	close(e.queue)
	e.wg.Wait()
}

// checkImage recovers one crash image with the real store and checks it:
// recovery succeeds, the bank holds everything acknowledged by then,
// recovering again gives the same state, and verify finds nothing wrong.
// It reports whether recovery cut a torn tail and which acknowledged
// transfers were lost.
func checkImage(ctx context.Context, img *image) (cut bool, lost []uint64, err error) {
	s, err := store.Open(store.Options{FS: img.fs, Dir: plDir})
	if err != nil {
		return false, nil, fmt.Errorf("recovery failed: %w", err)
	}
	cut = s.Log().TailCut() != nil
	snap := s.Snapshot()
	if err := s.Close(); err != nil {
		return cut, nil, fmt.Errorf("close after recovery: %w", err)
	}
	rep, err := Check(ctx, img.rec, SnapshotState{snap})
	if err != nil {
		return cut, nil, err
	}
	if err := rep.Err(); err != nil {
		return cut, rep.Lost, fmt.Errorf("recovered to index %d: %w", snap.Index(), err)
	}
	s2, err := store.Open(store.Options{FS: img.fs, Dir: plDir})
	if err != nil {
		return cut, nil, fmt.Errorf("second recovery failed: %w", err)
	}
	again := s2.Snapshot()
	s2.Close()
	if err := SameState([]string{"the first recovery", "the second"}, []uint64{snap.Index(), again.Index()},
		[]uint64{snap.Hash(), again.Hash()}); err != nil {
		return cut, nil, err
	}
	vrep, err := datadir.Verify(img.fs, plDir, datadir.VerifyOptions{})
	if err != nil {
		return cut, nil, fmt.Errorf("verify after recovery: %w", err)
	}
	if !vrep.OK() {
		return cut, nil, fmt.Errorf("verify after recovery found %d faults: %w", vrep.Faults, vrep.Err())
	}
	return cut, nil, nil
}

func runPowerLoss(ctx context.Context, env *Env) Result {
	r := newRun(env)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := vfs.NewMem()
	bank := NewBank(plAccounts, plInitial, 0)
	ex := newExplorer(ctx, m, bank, env.Seed)
	fsys := vfs.NewErrorFS(m, vfs.InjectorFunc(func(op vfs.Op, _ string) error {
		if op == vfs.OpSync || op == vfs.OpSyncDir {
			ex.take(true)
		}
		return nil
	}))
	m.SetSyncHook(func(int64) { ex.take(false) })
	s, err := store.Open(store.Options{FS: fsys, Dir: plDir, Create: true, Shards: 4, SegmentSize: plSegmentSize})
	if err != nil {
		ex.finish()
		return r.abort("create the store on the simulated file system: %v", err)
	}
	ex.armed.Store(true)
	var maint map[string]int
	err = r.step("setup", func() error { return bank.Setup(ctx, StoreTarget{s}) })
	if err == nil {
		r.step("load and crash at every sync point", func() error {
			maint = powerLoad(ctx, r, s, bank, ex, env)
			return nil
		})
	}
	ex.armed.Store(false)
	m.SetSyncHook(nil)
	if cerr := s.Close(); cerr != nil && err == nil {
		err = cerr
	}
	r.step("check the remaining crash images", func() error { ex.finish(); return nil })
	if err != nil {
		return r.abort("%v", err)
	}
	return powerLossResult(r, bank, ex, env, maint)
}

// powerLoad runs the bank load for env.Duration with maintenance cycling
// beside it, all on the store whose every sync point ex explores. It
// returns the maintenance steps completed.
func powerLoad(ctx context.Context, r *run, s *store.Store, bank *Bank, ex *explorer, env *Env) map[string]int {
	lctx, cancel := context.WithTimeout(ctx, env.Duration)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		bank.Run(lctx, StoreTarget{s}, plWorkers, env.Seed)
	}()
	ex.during.Store("load")
	maint := maintain(lctx, r, storeSteps(s), rand.New(rand.NewPCG(env.Seed, 3)), 40*time.Millisecond,
		func(step string) { ex.during.Store(step) })
	<-done
	return maint
}

func powerLossResult(r *run, bank *Bank, ex *explorer, env *Env, maint map[string]int) Result {
	st := bank.Stats()
	r.res.Acked = st.Acked
	r.res.Points = ex.checked
	r.res.Lost = len(ex.lost)
	r.note("%d crash points explored (%d before a sync with torn writes), %d needed a torn tail cut",
		ex.checked, ex.tornN, ex.cuts)
	r.note("maintenance done under the crash points: %s", maintText(maint))
	if st.Acked == 0 || ex.checked == 0 {
		return r.abort("nothing was acknowledged or no crash point was reached: the drill tested nothing")
	}
	if ex.failedN > 0 {
		lost := make([]uint64, 0, len(ex.lost))
		for id := range ex.lost {
			lost = append(lost, id)
		}
		sort.Slice(lost, func(i, j int) bool { return lost[i] < lost[j] })
		r.fail("%d of %d crash images failed their checks; first: %s", ex.failedN, ex.checked, ex.failures[0])
		for _, f := range ex.failures[1:] {
			r.logf("also: %s", f)
		}
		dst := filepath.Join(env.Dir, fmt.Sprintf("image-%d", ex.evidence.point))
		if err := copyOut(ex.evidence.fs, plDir, dst); err != nil {
			r.logf("could not save the failed image: %v", err)
		} else {
			r.note("the first failed image is saved in %s", dst)
		}
	}
	return r.result()
}
