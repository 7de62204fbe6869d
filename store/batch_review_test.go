package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// leaderHold makes the next batch leader (once armed) wait, before it
// takes the queue, until the test releases it: the test then queues the
// transactions it wants in that one batch.
type leaderHold struct {
	s       *Store
	q       *queueWatch
	armed   atomic.Bool
	held    chan struct{}
	release chan struct{}
	once    sync.Once
}

func holdLeaders(t *testing.T, s *Store) *leaderHold {
	h := &leaderHold{s: s, q: watchQueue(s), held: make(chan struct{}), release: make(chan struct{})}
	s.leadHook = func() {
		if h.armed.CompareAndSwap(true, false) {
			close(h.held)
			<-h.release
		}
	}
	t.Cleanup(h.let)
	return h
}

func (h *leaderHold) let() { h.once.Do(func() { close(h.release) }) }

// commitAsync commits txn on its own goroutine and waits until it is
// queued behind the held leader (n requests queued in all).
func (h *leaderHold) commitAsync(t *testing.T, ctx context.Context, txn *Txn, n int) <-chan commitResult {
	t.Helper()
	ch := make(chan commitResult, 1)
	go func() { idx, err := h.s.Commit(ctx, txn); ch <- commitResult{idx, err} }()
	h.q.waitLen(t, n)
	return ch
}

type commitResult struct {
	idx uint64
	err error
}

// keyOnOtherShard returns a key named after prefix whose shard differs
// from every shard of keys.
func keyOnOtherShard(s *Store, prefix string, keys ...string) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		ok := true
		for _, o := range keys {
			if shardOf(k, len(s.gates)) == shardOf(o, len(s.gates)) {
				ok = false
			}
		}
		if ok {
			return k
		}
	}
}

// TestBatchNoSpaceSparesOtherVerdicts: on a full disk, a batch holds a
// transaction that only checks (and passes), a put that needs the next
// WAL segment (refused with ErrNoSpace), and a transaction whose check
// fails on a shard the put does not touch. Neither of the two that logged
// nothing saw the refused put, so its refusal must not change what they
// report: the check-only one succeeds and the failing one reports its
// *CheckError (nothing changed: exit 4, not an operational failure). This
// is what each of them got when it committed alone. A fourth one, whose
// check fails on the refused put's value, must not report that value.
func TestBatchNoSpaceSparesOtherVerdicts(t *testing.T) {
	_, fsys, full := fillableDisk()
	s, err := Open(Options{FS: fsys, Dir: "/data", Create: true, SegmentSize: 4096, Shards: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	big := []byte(strings.Repeat("x", 100))
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("the disk never filled")
		}
		if _, err := s.Put(ctx, fmt.Sprintf("f%04d", i), big); err != nil {
			if !errors.Is(err, ErrNoSpace) {
				t.Fatal(err)
			}
			break
		}
	}
	w := keyOnOtherShard(s, "w", "k")
	h := holdLeaders(t, s)
	h.armed.Store(true)
	checkOnly := make(chan commitResult, 1)
	go func() {
		idx, err := s.Commit(ctx, &Txn{Ops: []Op{{Kind: OpCheck, Key: "k", Check: CheckEquals, Value: []byte("v")}}})
		checkOnly <- commitResult{idx, err}
	}()
	<-h.held
	put := h.commitAsync(t, ctx, &Txn{Ops: []Op{{Kind: OpPut, Key: w, Value: big}}}, 2)
	failing := h.commitAsync(t, ctx, &Txn{Ops: []Op{
		{Kind: OpCheck, Key: "k", Check: CheckEquals, Value: []byte("other")},
		{Kind: OpPut, Key: "k", Value: []byte("changed")},
	}}, 3)
	// This one's check fails on the refused put's value, which never
	// exists: it must not be reported as its verdict.
	sawPut := h.commitAsync(t, ctx, &Txn{Ops: []Op{
		{Kind: OpCheck, Key: w, Check: CheckAbsent},
		{Kind: OpPut, Key: "k", Value: []byte("changed")},
	}}, 4)
	h.let()
	if r := <-put; !errors.Is(r.err, ErrNoSpace) {
		t.Fatalf("put on a full disk: %v, want ErrNoSpace", r.err)
	}
	if r := <-checkOnly; r.err != nil {
		t.Errorf("a transaction that only checked (and passed) got %v from another transaction's refused put", r.err)
	}
	var ce *CheckError
	if r := <-failing; !errors.As(r.err, &ce) {
		t.Errorf("a transaction whose check failed got %v, want its *CheckError", r.err)
	}
	if r := <-sawPut; errors.As(r.err, &ce) {
		t.Errorf("a transaction whose check failed on the refused put's value reported it: %v", r.err)
	}
	if v, _ := s.Get("k"); string(v) != "v" {
		t.Fatalf("k = %q, want v", v)
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
}

// modelEval decides txn against state the way DESIGN.md defines the
// operations, independently of the store's staging code: it returns the
// transaction's effects (key -> value, nil for a delete) and whether every
// check passed.
func modelEval(state map[string]string, txn *Txn) (map[string]*string, bool) {
	eff := map[string]*string{}
	read := func(k string) (string, bool) {
		if e, ok := eff[k]; ok {
			if e == nil {
				return "", false
			}
			return *e, true
		}
		v, ok := state[k]
		return v, ok
	}
	num := func(v string, ok bool) (int64, bool) {
		if !ok {
			return 0, true
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return n, err == nil
	}
	for _, op := range txn.Ops {
		v, ok := read(op.Key)
		switch op.Kind {
		case OpPut:
			s := string(op.Value)
			eff[op.Key] = &s
		case OpDelete:
			if ok {
				eff[op.Key] = nil
			}
		case OpAdd:
			n, good := num(v, ok)
			if !good {
				return nil, false
			}
			s := strconv.FormatInt(n+op.Delta, 10) // the workload's deltas cannot overflow
			eff[op.Key] = &s
		case OpCheck:
			switch op.Check {
			case CheckExists:
				if !ok {
					return nil, false
				}
			case CheckAbsent:
				if ok {
					return nil, false
				}
			case CheckEquals:
				if !ok || v != string(op.Value) {
					return nil, false
				}
			case CheckMin:
				n, good := num(v, ok)
				if !good || n < op.Min {
					return nil, false
				}
			}
		}
	}
	return eff, true
}

// randomDependentTxn draws a transaction over a few keys, with deletes and
// checks, so that the members of one batch read each other's writes.
func randomDependentTxn(rng *rand.Rand) *Txn {
	keys := []string{"a", "b", "c", "d", "e", "f"}
	vals := []string{"0", "1", "2", "3", "x"}
	txn := &Txn{}
	for range 1 + rng.IntN(4) {
		k := keys[rng.IntN(len(keys))]
		switch rng.IntN(8) {
		case 0, 1:
			txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: k, Value: []byte(vals[rng.IntN(len(vals))])})
		case 2:
			txn.Ops = append(txn.Ops, Op{Kind: OpDelete, Key: k})
		case 3:
			txn.Ops = append(txn.Ops, Op{Kind: OpAdd, Key: k, Delta: int64(rng.IntN(5) - 2)})
		case 4:
			txn.Ops = append(txn.Ops, Op{Kind: OpCheck, Key: k, Check: CheckExists})
		case 5:
			txn.Ops = append(txn.Ops, Op{Kind: OpCheck, Key: k, Check: CheckAbsent})
		case 6:
			txn.Ops = append(txn.Ops, Op{Kind: OpCheck, Key: k, Check: CheckEquals, Value: []byte(vals[rng.IntN(len(vals))])})
		default:
			txn.Ops = append(txn.Ops, Op{Kind: OpCheck, Key: k, Check: CheckMin, Min: int64(rng.IntN(3))})
		}
	}
	return txn
}

// TestBatchRecordsMatchSequentialDecision: workers commit dependent
// transactions (puts, deletes, adds and checks over six keys) while every
// other batch leader waits until all live workers are queued, so batches
// are as full as the workload allows and their members read and delete
// what earlier members wrote. Then every WAL record, in index order, must
// be an acknowledged transaction that, decided alone against the state
// after every record before it (as replay rebuilds it), passes its checks
// and has exactly the record's effects; every acknowledged transaction
// that puts has its record; and a reopened store holds the model's state.
func TestBatchRecordsMatchSequentialDecision(t *testing.T) {
	m := vfs.NewMem()
	s, err := Open(Options{FS: m, Dir: "/data", Create: true, Shards: 4, SegmentSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 6, 150
	var alive atomic.Int64
	alive.Store(workers)
	var leads atomic.Int64
	q := watchQueue(s)
	s.leadHook = func() {
		if leads.Add(1)%3 == 0 {
			return // some batches go as they are
		}
		// Not waitLen: this runs on a worker's goroutine, where t.Fatal
		// must not be called.
		if !q.wait(func(n int) bool { return int64(n) >= alive.Load() }) {
			t.Error("gave up waiting for the live workers to queue")
		}
	}
	type acked struct {
		txn *Txn
		idx uint64
	}
	var mu sync.Mutex
	var acks []acked
	checkFails := 0
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer q.poke() // a leader waits for one fewer worker
			defer alive.Add(-1)
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range perWorker {
				txn := randomDependentTxn(rng)
				idx, err := s.Commit(context.Background(), txn)
				var ce *CheckError
				mu.Lock()
				switch {
				case errors.As(err, &ce):
					checkFails++
				case err != nil:
					mu.Unlock()
					errc <- err
					return
				default:
					acks = append(acks, acked{txn, idx})
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	live := s.Snapshot()
	last := live.Index()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d acknowledged, %d refused by a check, %d records, %d batches led", len(acks), checkFails, last, leads.Load())

	byIdx := map[uint64][]int{}
	for i, a := range acks {
		byIdx[a.idx] = append(byIdx[a.idx], i)
	}
	matched := make([]bool, len(acks))
	state := map[string]string{}
	r, err := segment.NewReader(m, filepath.Join("/data", format.WALDir), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for idx := uint64(1); idx <= last; idx++ {
		e, err := r.Next()
		if err != nil {
			t.Fatalf("record %d: %v", idx, err)
		}
		if e.Index != idx || e.Type != format.FrameWALTxn {
			t.Fatalf("record %d: index %d type %d", idx, e.Index, e.Type)
		}
		rec := map[string]*string{}
		if err := format.DecodeTxnRecord(e.Data, func(kind uint8, key, value []byte) {
			if kind == format.TxnDelete {
				rec[string(key)] = nil
			} else {
				v := string(value)
				rec[string(key)] = &v
			}
		}); err != nil {
			t.Fatalf("record %d: %v", idx, err)
		}
		found := false
		for _, i := range byIdx[idx] {
			eff, ok := modelEval(state, acks[i].txn)
			if !ok || !sameEffects(eff, rec) {
				continue
			}
			matched[i], found = true, true
			for k, v := range eff {
				if v == nil {
					delete(state, k)
				} else {
					state[k] = *v
				}
			}
			break
		}
		if !found {
			var cands []string
			for _, i := range byIdx[idx] {
				eff, ok := modelEval(state, acks[i].txn)
				cands = append(cands, fmt.Sprintf("%+v (alone: pass %v, effects %s)", acks[i].txn.Ops, ok, showEffects(eff)))
			}
			t.Fatalf("record %d (effects %s) is no acknowledged transaction decided alone on the state before it %v; acknowledged at %d: %s",
				idx, showEffects(rec), state, idx, strings.Join(cands, "; "))
		}
	}
	for i, a := range acks {
		for _, op := range a.txn.Ops {
			if op.Kind == OpPut && !matched[i] {
				t.Fatalf("acknowledged transaction %+v at %d has no record", a.txn.Ops, a.idx)
			}
		}
	}
	for k, v := range state {
		if g, ok := live.Get(k); !ok || string(g) != v {
			t.Fatalf("live state %s = %q (%v), the records give %q", k, g, ok, v)
		}
	}
	re, err := Open(Options{FS: m, Dir: "/data"})
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		g, ok := re.Get(k)
		v, want := state[k]
		if ok != want || string(g) != v {
			t.Fatalf("after reopen %s = %q (%v), want %q (%v)", k, g, ok, v, want)
		}
	}
}

func sameEffects(a, b map[string]*string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || (v == nil) != (w == nil) || (v != nil && *v != *w) {
			return false
		}
	}
	return true
}

func showEffects(e map[string]*string) string {
	var parts []string
	for k, v := range e {
		if v == nil {
			parts = append(parts, k+":del")
		} else {
			parts = append(parts, k+"="+*v)
		}
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// TestBatchFsyncFailureInsideBatch: one batch holds a put of k, a
// transaction that only checks k against the put's value (it passes on the
// batch's view), one whose check fails against it, and a put on another
// shard. The batch's fsync fails: nothing may be acknowledged — not even
// the check that passed on a value that never became durable — the failed
// check must report the store's failure, never the value that never
// existed, and nothing of the batch is published.
func TestBatchFsyncFailureInsideBatch(t *testing.T) {
	gate := newSyncGate()
	s, err := Open(Options{FS: vfs.NewErrorFS(vfs.NewMem(), gate), Dir: "/d", Create: true, Shards: 8, SegmentSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Put(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	before := s.Snapshot().Index()
	other := keyOnOtherShard(s, "o", "k")
	h := holdLeaders(t, s)
	h.armed.Store(true)
	put := make(chan commitResult, 1)
	go func() { idx, err := s.Put(ctx, "k", []byte("v1")); put <- commitResult{idx, err} }()
	<-h.held
	passes := h.commitAsync(t, ctx, &Txn{Ops: []Op{{Kind: OpCheck, Key: "k", Check: CheckEquals, Value: []byte("v1")}}}, 2)
	fails := h.commitAsync(t, ctx, &Txn{Ops: []Op{
		{Kind: OpCheck, Key: "k", Check: CheckEquals, Value: []byte("v0")},
		{Kind: OpPut, Key: "z", Value: []byte("1")},
	}}, 3)
	putOther := h.commitAsync(t, ctx, &Txn{Ops: []Op{{Kind: OpPut, Key: other, Value: []byte("1")}}}, 4)
	gate.armed.Store(true)
	h.let()
	<-gate.reached
	if got := s.Snapshot().Index(); got != before {
		t.Fatalf("published index %d before the batch's fsync returned, want %d", got, before)
	}
	gate.release <- errors.New("EIO on fsync")
	for name, ch := range map[string]<-chan commitResult{"put k": put, "check-only": passes, "put other": putOther} {
		if r := <-ch; r.err == nil || !errors.Is(r.err, ErrFailed) {
			t.Errorf("%s: acknowledged (index %d, %v) although the batch's fsync failed", name, r.idx, r.err)
		}
	}
	r := <-fails
	var ce *CheckError
	if errors.As(r.err, &ce) || !errors.Is(r.err, ErrFailed) || strings.Contains(r.err.Error(), "v1") {
		t.Errorf("failing check: %v; want the store's failure, not the value that never existed", r.err)
	}
	if got := s.Snapshot().Index(); got != before {
		t.Fatalf("published index %d after the failed fsync, want %d", got, before)
	}
	if v, _ := s.Get("k"); string(v) != "v0" {
		t.Fatalf("k = %q after the failed fsync, want v0", v)
	}
}

// TestBatchCancelledAfterTaken: a caller cancels while its transaction is
// already in a batch (the leader took it and waits for a shard's gate).
// The caller must be told the truth: either it is acknowledged and its
// write is there, or it gets an error and its write is nowhere — never an
// error for a write that was committed.
func TestBatchCancelledAfterTaken(t *testing.T) {
	s, err := Open(Options{FS: vfs.NewMem(), Dir: "/d", Create: true, Shards: 8, SegmentSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	y := keyOnOtherShard(s, "y", "x")
	h := holdLeaders(t, s)
	h.armed.Store(true)
	lead := make(chan commitResult, 1)
	go func() { idx, err := s.Put(ctx, "x", []byte("1")); lead <- commitResult{idx, err} }()
	<-h.held
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	taken := h.commitAsync(t, cctx, &Txn{Ops: []Op{{Kind: OpPut, Key: y, Value: []byte("1")}}}, 2)
	sh := shardOf(y, len(s.gates))
	if err := s.acquire(ctx, []int{sh}); err != nil { // the leader will wait for this gate
		t.Fatal(err)
	}
	h.let()
	h.q.waitLen(t, 0) // the leader took the queue
	cancel()
	s.release([]int{sh})
	if r := <-lead; r.err != nil {
		t.Fatal(r.err)
	}
	r := <-taken
	v, ok := s.Get(y)
	switch {
	case r.err == nil && (!ok || string(v) != "1" || s.Snapshot().Index() < r.idx):
		t.Fatalf("acknowledged at %d, but %s = %q (%v) at %d", r.idx, y, v, ok, s.Snapshot().Index())
	case r.err != nil && ok:
		t.Fatalf("told %v, but its write %s = %q was committed", r.err, y, v)
	}
}

// TestBatchBigTxnSplitsRounds: a batch holds a small put, a transaction
// bigger than the WAL's batch limit, a transaction that checks the big
// one's key (it must see it: log order is batch order) and another small
// put. Everything commits, at consecutive indexes in queue order, the big
// transaction as one record, and a reopen has it all.
func TestBatchBigTxnSplitsRounds(t *testing.T) {
	m := vfs.NewMem()
	s, err := Open(Options{FS: m, Dir: "/d", Create: true, Shards: 4, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	limit := s.log.MaxBatchBytes()
	big := &Txn{}
	for i := 0; i*(600<<10) < limit+(600<<10); i++ {
		big.Ops = append(big.Ops, Op{Kind: OpPut, Key: fmt.Sprintf("big%d", i), Value: []byte(strings.Repeat("b", 600<<10))})
	}
	h := holdLeaders(t, s)
	h.armed.Store(true)
	first := make(chan commitResult, 1)
	go func() { idx, err := s.Put(ctx, "s1", []byte("1")); first <- commitResult{idx, err} }()
	<-h.held
	bigc := h.commitAsync(t, ctx, big, 2)
	dep := h.commitAsync(t, ctx, &Txn{Ops: []Op{
		{Kind: OpCheck, Key: "big0", Check: CheckExists},
		{Kind: OpPut, Key: "dep", Value: []byte("1")},
	}}, 3)
	last := h.commitAsync(t, ctx, &Txn{Ops: []Op{{Kind: OpPut, Key: "s2", Value: []byte("1")}}}, 4)
	h.let()
	var idx []uint64
	for _, ch := range []<-chan commitResult{first, bigc, dep, last} {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		idx = append(idx, r.idx)
	}
	for i := 1; i < len(idx); i++ {
		if idx[i] != idx[0]+uint64(i) {
			t.Fatalf("indexes %v: want consecutive, in queue order", idx)
		}
	}
	s.Close()
	r, err := segment.NewReader(m, filepath.Join("/d", format.WALDir), idx[1])
	if err != nil {
		t.Fatal(err)
	}
	e, err := r.Next()
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	format.DecodeTxnRecord(e.Data, func(uint8, []byte, []byte) { n++ })
	if e.Index != idx[1] || n != len(big.Ops) {
		t.Fatalf("record %d holds %d effects, want the big transaction's %d at %d", e.Index, n, len(big.Ops), idx[1])
	}
	s, err = Open(Options{FS: m, Dir: "/d"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range []string{"s1", "big0", fmt.Sprintf("big%d", len(big.Ops)-1), "dep", "s2"} {
		if _, ok := s.Get(k); !ok {
			t.Fatalf("%s lost after reopen", k)
		}
	}
}
