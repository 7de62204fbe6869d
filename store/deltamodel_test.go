package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/replay"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// TestDeltaModel drives a cluster member's store (a replica applying
// entries at raft's indexes, its WAL synced at intervals, so published
// before durable) through random runs of entries (puts and deletes over a
// small key space, so keys are deleted and put again; failed checks and
// no-ops), deltas, merges, checkpoints, compactions with and without a
// peer's lease, WAL rotations, deltas and manifest publishes that fail,
// deltas taken while entries are applied, clean restarts, power losses
// (a crash image of the file system between steps or at a sync inside a
// maintenance step, its WAL now and then repaired as kvtool wal repair
// does; the entries the store lost are applied again from the model's
// log, as a member's raft log would) and installs of another store's state
// (InstallFrom, with its WAL tail logged or written as a delta, or the
// state written whole). A model keeps the state after every index. After
// every step, the state rebuilt from the manifest's base and deltas
// alone, without the WAL, must be the model's state at the chain's index,
// and the published state the model's at its index: a delta that misses a
// key (it reads them from the WAL entries after the chain) or covers one
// too many shows there. The same steps, installs aside, also drive a
// single node's store (Commit), where a power loss loses nothing.
//
// KVTOOL_DELTA_MODEL_STEPS sets the steps per run (default 300).
func TestDeltaModel(t *testing.T) {
	steps := 300
	if v := os.Getenv("KVTOOL_DELTA_MODEL_STEPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("KVTOOL_DELTA_MODEL_STEPS=%q: want a positive number", v)
		}
		steps = n
	}
	for seed := uint64(1); seed <= 2; seed++ {
		t.Run(fmt.Sprint("member/seed", seed), func(t *testing.T) {
			newDeltaModel(t, seed, true).run(steps)
		})
	}
	t.Run("single", func(t *testing.T) { newDeltaModel(t, 3, false).run(steps) })
}

// modelState is the store's state after one index.
type modelState map[string]string

// deltaModel is the store under test and what it must hold.
type deltaModel struct {
	t    *testing.T
	rng  *rand.Rand
	ctx  context.Context
	mem  *vfs.MemFS
	fail atomic.Int32 // the injected failure armed: one of failNone...
	s    *Store
	log  []*Txn         // log[i]: the transaction of entry i (nil: a no-op); log[0] unused
	st   []modelState   // st[i]: the state after entry i
	n    int            // installs so far (the received stores' directories)
	seen map[string]int // steps taken, by kind
	ls   *Lease
	// member: the store is a cluster member's (ApplyTxnsAt at the
	// model's indexes, its WAL synced at intervals); else a single
	// node's (Commit: nothing acknowledged may be lost).
	member bool
}

const (
	failNone int32 = iota
	failSnapSync
	failManifest
)

func newDeltaModel(t *testing.T, seed uint64, member bool) *deltaModel {
	m := &deltaModel{t: t, rng: rand.New(rand.NewPCG(seed, 91)), ctx: context.Background(), mem: vfs.NewMem(),
		log: []*Txn{nil}, st: []modelState{{}}, seen: map[string]int{}, member: member}
	m.s = m.open(true)
	return m
}

// fs is the store's file system: the model's, with the armed failure.
func (m *deltaModel) fs() vfs.FS {
	return vfs.NewErrorFS(m.mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		switch f := m.fail.Load(); {
		case f == failSnapSync && op == vfs.OpSync && strings.Contains(path, "/snap/"),
			f == failManifest && op == vfs.OpRename && strings.HasSuffix(path, "/MANIFEST"):
			return vfs.ErrInjected
		}
		return nil
	}))
}

func (m *deltaModel) open(create bool) *Store {
	m.t.Helper()
	o := Options{FS: m.fs(), Dir: "/data", Create: create, Shards: 4, SegmentSize: 16 << 10}
	if m.member {
		o.Replica, o.WALSyncInterval = true, 5*time.Millisecond
	}
	s, err := Open(o)
	if err != nil {
		m.t.Fatal(err)
	}
	return s
}

func (m *deltaModel) run(steps int) {
	for step := range steps {
		kind := m.step()
		m.seen[kind]++
		if err := m.check(); err != nil {
			m.t.Fatalf("step %d (%s): %v", step, kind, err)
		}
	}
	m.t.Logf("steps: %v", m.seen)
	for _, k := range []string{"delta", "merge", "checkpoint", "crash", "install"} {
		if m.seen[k] == 0 && (m.member || k != "install") {
			m.t.Errorf("no %s step ran", k)
		}
	}
	if err := m.s.Close(); err != nil {
		m.t.Fatal(err)
	}
}

// step takes one random step and returns its kind.
func (m *deltaModel) step() string {
	switch r := m.rng.IntN(100); {
	case r < 50:
		m.apply(1 + m.rng.IntN(3))
		return "apply"
	case r < 62:
		m.maint("delta", func() error { _, err := m.s.Delta(m.ctx); return err })
		return "delta"
	case r < 64:
		m.failing()
		return "failed delta"
	case r < 66:
		m.loaded()
		return "delta under load"
	case r < 71:
		m.maint("merge", func() error { _, err := m.s.Merge(m.ctx); return err })
		return "merge"
	case r < 75:
		m.maint("checkpoint", func() error { _, err := m.s.Checkpoint(m.ctx); return err })
		return "checkpoint"
	case r < 79:
		m.lease()
		m.maint("compact", func() error { _, err := m.s.Compact(m.ctx); return err })
		return "compact"
	case r < 82:
		if err := m.s.Rotate(); err != nil {
			m.t.Fatal(err)
		}
		return "rotate"
	case r < 87:
		if err := m.s.Close(); err != nil {
			m.t.Fatal(err)
		}
		m.s = m.open(false)
		return "reopen"
	case r < 91:
		m.crash()
		return "crash"
	case r < 94:
		m.crashDuring()
		return "crash during maintenance"
	case m.member:
		m.install()
		return "install"
	}
	m.apply(1)
	return "apply"
}

// apply applies n random entries as one run at the store's next indexes.
func (m *deltaModel) apply(n int) {
	m.t.Helper()
	if err := m.applyRun(m.rng, n); err != nil {
		m.t.Fatal(err)
	}
}

// applyRun is apply drawing from rng, for a goroutine of its own.
func (m *deltaModel) applyRun(rng *rand.Rand, n int) error {
	first := m.s.LastIndex() + 1
	if first != uint64(len(m.log)) {
		return fmt.Errorf("the store's log ends at %d, the model's at %d", first-1, len(m.log)-1)
	}
	if !m.member {
		return m.commit(rng, n)
	}
	ents := make([]EntryTxn, n)
	for i := range ents {
		ents[i].Txn = randomModelTxn(rng)
		m.record(ents[i].Txn)
	}
	_, _, err := m.s.ApplyTxnsAt(m.ctx, first, ents)
	return err
}

// commit commits n random transactions one by one on a single node's
// store: one that fails a check, or changes nothing, logs no entry.
func (m *deltaModel) commit(rng *rand.Rand, n int) error {
	for range n {
		txn := randomModelTxn(rng)
		if txn == nil {
			continue
		}
		idx, err := m.s.Commit(m.ctx, txn)
		switch {
		case errors.Is(err, ErrCheckFailed):
		case err != nil:
			return err
		case idx == uint64(len(m.log)):
			m.record(txn)
		case idx > uint64(len(m.log)):
			return fmt.Errorf("committed at %d, the model's log ends at %d", idx, len(m.log)-1)
		}
	}
	return nil
}

// loaded takes a delta while entries are applied: what it covers is the
// state it saw published, the entries after it are the next delta's (and
// with small segments the WAL rotates under it).
func (m *deltaModel) loaded() {
	rng := rand.New(rand.NewPCG(m.rng.Uint64(), 1))
	done := make(chan error, 1)
	go func() {
		for range 40 {
			if err := m.applyRun(rng, 1+rng.IntN(3)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	m.maint("delta under load", func() error { _, err := m.s.Delta(m.ctx); return err })
	if err := <-done; err != nil {
		m.t.Fatal(err)
	}
}

// record appends txn to the model's log and its outcome to the states.
func (m *deltaModel) record(txn *Txn) {
	m.log = append(m.log, txn)
	m.st = append(m.st, evalModel(m.st[len(m.st)-1], txn))
}

// evalModel returns the state after txn (puts, deletes and presence
// checks) on prev; a failed check changes nothing.
func evalModel(prev modelState, txn *Txn) modelState {
	if txn == nil {
		return prev
	}
	next := maps.Clone(prev)
	for _, op := range txn.Ops {
		_, ok := next[op.Key]
		switch {
		case op.Kind == OpPut:
			next[op.Key] = string(op.Value)
		case op.Kind == OpDelete:
			delete(next, op.Key)
		case op.Check == CheckExists && !ok, op.Check == CheckAbsent && ok:
			return prev
		}
	}
	return next
}

// randomTxn writes over a small key space of short keys (inside their
// pair) and long ones, with now and then a check that may fail or no
// transaction at all.
func (m *deltaModel) randomTxn() *Txn { return randomModelTxn(m.rng) }

func randomModelTxn(rng *rand.Rand) *Txn {
	if rng.IntN(20) == 0 {
		return nil
	}
	txn := &Txn{}
	for range 1 + rng.IntN(3) {
		k := rng.IntN(40)
		key := fmt.Sprintf("k%02d", k)
		if k%3 == 0 {
			key = fmt.Sprintf("key/with/a/long/shared/prefix/%04d", k)
		}
		switch r := rng.IntN(10); {
		case r < 3:
			txn.Ops = append(txn.Ops, Op{Kind: OpDelete, Key: key})
		case r == 3:
			txn.Ops = append(txn.Ops, Op{Kind: OpCheck, Key: key, Check: CheckExists})
		case r == 4:
			txn.Ops = append(txn.Ops, Op{Kind: OpCheck, Key: key, Check: CheckAbsent})
		default:
			txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: key, Value: fmt.Appendf(nil, "v%d", rng.IntN(1000))})
		}
	}
	return txn
}

// maint runs a maintenance step; having nothing to do is fine.
func (m *deltaModel) maint(what string, f func() error) {
	m.t.Helper()
	if err := f(); err != nil && !errors.Is(err, ErrNothingToDo) {
		m.t.Fatalf("%s: %v", what, err)
	}
}

// failing takes a delta whose file or manifest publish fails: the
// manifest must not change, and the next delta covers what this one
// would have.
func (m *deltaModel) failing() {
	before := m.s.CurrentManifest()
	m.fail.Store(failSnapSync + int32(m.rng.IntN(2)))
	_, err := m.s.Delta(m.ctx)
	m.fail.Store(failNone)
	if err == nil {
		m.t.Fatal("a delta whose write failed succeeded")
	}
	if after := m.s.CurrentManifest(); after.SnapshotIndex() != before.SnapshotIndex() || len(after.Deltas) != len(before.Deltas) {
		m.t.Fatalf("a failed delta (%v) changed the manifest: %+v, was %+v", err, after, before)
	}
}

// lease holds or lets go a peer's lease on the log after a random index,
// so compaction keeps more WAL than the manifest needs, or only that.
func (m *deltaModel) lease() {
	if m.ls != nil {
		m.ls.Release()
		m.ls = nil
		return
	}
	if last := m.s.LastIndex(); last > 0 {
		m.ls = m.s.AcquireLease("peer", m.rng.Uint64N(last), nil, time.Hour)
	}
}

// crash loses power: the store reopens on what was durable (a random
// prefix of what was not, the last write maybe torn), and the entries it
// lost are applied again from the model's log.
func (m *deltaModel) crash() {
	m.crashTo(m.mem.CrashClone(vfs.CrashOptions{Rand: m.rng, TearLast: m.rng.IntN(2) == 0}))
}

// crashDuring loses power at one of the syncs of a maintenance step (a
// delta, merge, checkpoint or compaction), the image holding exactly what
// was durable there.
func (m *deltaModel) crashDuring() {
	var mu sync.Mutex
	var images []*vfs.MemFS
	mem := m.mem
	mem.SetSyncHook(func(int64) {
		img := mem.CrashClone(vfs.CrashOptions{})
		mu.Lock()
		images = append(images, img)
		mu.Unlock()
	})
	switch m.rng.IntN(4) {
	case 0:
		m.maint("delta", func() error { _, err := m.s.Delta(m.ctx); return err })
	case 1:
		m.maint("merge", func() error { _, err := m.s.Merge(m.ctx); return err })
	case 2:
		m.maint("checkpoint", func() error { _, err := m.s.Checkpoint(m.ctx); return err })
	default:
		m.maint("compact", func() error { _, err := m.s.Compact(m.ctx); return err })
	}
	mem.SetSyncHook(nil)
	mu.Lock()
	defer mu.Unlock()
	if len(images) == 0 {
		m.crash()
		return
	}
	m.crashTo(images[m.rng.IntN(len(images))])
}

// crashTo restarts the store on img.
func (m *deltaModel) crashTo(img *vfs.MemFS) {
	m.s.Close()
	m.ls = nil
	m.mem = img
	if m.rng.IntN(3) == 0 {
		// kvtool wal repair before the restart: a torn tail is cut
		// (and kept) by the operator rather than by the open.
		if _, err := segment.Repair(img, "/data/wal", segment.RepairOptions{}); err != nil {
			m.t.Fatalf("repair the crash image's WAL: %v", err)
		}
		m.seen["crash, then repair"]++
	}
	m.s = m.open(false)
	got := m.s.Snapshot()
	if got.Index() >= uint64(len(m.st)) {
		m.t.Fatalf("recovered at %d, past the model's log (%d)", got.Index(), len(m.st)-1)
	}
	if err := sameState(got, m.st[got.Index()]); err != nil {
		m.t.Fatalf("recovered at %d: %v", got.Index(), err)
	}
	if got.Index() < uint64(len(m.log)-1) {
		if !m.member {
			m.t.Fatalf("recovered at %d: every commit to %d was acknowledged", got.Index(), len(m.log)-1)
		}
		m.seen["crash lost entries"]++
	}
	for idx := got.Index() + 1; idx < uint64(len(m.log)); idx++ {
		if _, _, err := m.s.ApplyTxnAt(m.ctx, idx, m.log[idx]); err != nil {
			m.t.Fatalf("apply %d again after the crash: %v", idx, err)
		}
	}
}

// install builds another store's history, a base at some index near this
// store's last and its WAL after it (or, now and then, a delta too, which
// makes InstallFrom write the state whole), and installs it: the model's
// log up to its index becomes that history.
func (m *deltaModel) install() {
	last := len(m.log) - 1
	base := max(1, last-5+m.rng.IntN(11))
	end := max(base, last+1) + m.rng.IntN(8)
	if end == base && base <= last {
		end++
	}
	dir := fmt.Sprintf("/recv%d", m.n)
	m.n++
	src, err := Open(Options{FS: m.mem, Dir: dir, Create: true, Replica: true, Shards: 4, SegmentSize: 16 << 10})
	if err != nil {
		m.t.Fatal(err)
	}
	log, st := []*Txn{nil}, []modelState{{}}
	run := func(from, to int) {
		ents := make([]EntryTxn, 0, to-from+1)
		for idx := from; idx <= to; idx++ {
			txn := m.randomTxn()
			log, st = append(log, txn), append(st, evalModel(st[idx-1], txn))
			ents = append(ents, EntryTxn{Txn: txn})
		}
		if len(ents) == 0 {
			return
		}
		if _, _, err := src.ApplyTxnsAt(m.ctx, uint64(from), ents); err != nil {
			m.t.Fatal(err)
		}
	}
	run(1, base)
	if m.rng.IntN(4) == 0 {
		// Its chain is a delta: InstallFrom writes the state whole.
		m.maint("received store's delta", func() error { _, err := src.Delta(m.ctx); return err })
	} else {
		m.maint("received store's checkpoint", func() error { _, err := src.Checkpoint(m.ctx); return err })
	}
	run(base+1, end)
	if err := src.Close(); err != nil {
		m.t.Fatal(err)
	}
	ro, err := Open(Options{FS: m.mem, Dir: dir, ReadOnly: true})
	if err != nil {
		m.t.Fatal(err)
	}
	defer ro.Close()
	if err := m.s.InstallFrom(m.ctx, ro); err != nil {
		m.t.Fatalf("install a state at %d (base at %d) over a log ending at %d: %v", end, base, last, err)
	}
	m.log, m.st = log, st
	switch man := m.s.CurrentManifest(); {
	case man.Base.Index == uint64(base) && len(man.Deltas) == 0 && base < end:
		m.seen["install: tail logged"]++
	case len(man.Deltas) == 1:
		m.seen["install: tail as a delta"]++
	default:
		m.seen["install: no tail, or the state written"]++
	}
}

// check compares the published state and the state the manifest's chain
// holds without the WAL with the model's.
func (m *deltaModel) check() error {
	snap := m.s.Snapshot()
	if snap.Index() >= uint64(len(m.st)) {
		return fmt.Errorf("published %d, past the model's log (%d)", snap.Index(), len(m.st)-1)
	}
	if err := sameState(snap, m.st[snap.Index()]); err != nil {
		return fmt.Errorf("published state at %d: %w", snap.Index(), err)
	}
	man, err := manifest.Load(m.mem, "/data")
	if err != nil {
		return err
	}
	if mem := m.s.CurrentManifest(); mem.SnapshotIndex() != man.SnapshotIndex() || len(mem.Deltas) != len(man.Deltas) {
		return fmt.Errorf("the manifest in memory (chain to %d, %d deltas) is not the one on disk (%d, %d)",
			mem.SnapshotIndex(), len(mem.Deltas), man.SnapshotIndex(), len(man.Deltas))
	}
	rebuilt := replay.NewMemory()
	chain, err := replay.Snapshot(m.mem, "/data", man, 0, rebuilt)
	if err != nil {
		return fmt.Errorf("rebuild from the manifest's files: %w", err)
	}
	if chain.Index != man.SnapshotIndex() || chain.Index > snap.Index() {
		return fmt.Errorf("the chain ends at %d, the manifest says %d, published %d", chain.Index, man.SnapshotIndex(), snap.Index())
	}
	got := modelState{}
	rebuilt.Ascend(func(k string, v []byte) bool { got[k] = string(v); return true })
	if err := diffStates(got, m.st[chain.Index]); err != nil {
		return fmt.Errorf("the base and %d deltas rebuilt at %d: %w", len(chain.Deltas), chain.Index, err)
	}
	return nil
}

func sameState(snap *Snapshot, want modelState) error {
	got := modelState{}
	snap.Scan(ScanOptions{}, func(k string, v []byte) bool { got[k] = string(v); return true })
	return diffStates(got, want)
}

// diffStates names up to a few keys where got and want differ.
func diffStates(got, want modelState) error {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok || g != want[k] {
			diffs = append(diffs, fmt.Sprintf("%s: got %q (present %v), want %q", k, g, ok, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want absent", k, got[k]))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%d keys differ: %s", len(diffs), strings.Join(diffs[:min(len(diffs), 4)], "; "))
}
