package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/vfs"
)

// heldBatch opens a store whose next batch leader waits, before it takes
// the queue, until the test calls release; waitQueued waits until n
// requests are queued.
func heldBatch(t *testing.T) (s *Store, held <-chan struct{}, release func(), waitQueued func(n int)) {
	t.Helper()
	s, err := Open(Options{FS: vfs.NewMem(), Dir: "/d", Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h, r := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.leadHook = func() {
		first := false
		once.Do(func() { first = true })
		if first {
			close(h)
			<-r
		}
	}
	var rOnce sync.Once
	release = func() { rOnce.Do(func() { close(r) }) }
	t.Cleanup(release)
	w := watchQueue(s)
	return s, h, release, func(n int) { w.waitLen(t, n) }
}

// queueWatch lets a test wait for the batch committer's queue length as
// an event: the store's queueHook signals each change (the channel holds
// one signal, so a change between a check and the wait is not lost).
type queueWatch struct {
	s       *Store
	changed chan struct{}
}

// watchQueue sets s's queueHook; set it before any commit starts.
func watchQueue(s *Store) *queueWatch {
	w := &queueWatch{s: s, changed: make(chan struct{}, 1)}
	s.queueHook = w.poke
	return w
}

// poke signals a change (the hook; also for a change of what a waiter
// compares the length with).
func (w *queueWatch) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *queueWatch) len() int {
	w.s.batcher.mu.Lock()
	defer w.s.batcher.mu.Unlock()
	return len(w.s.batcher.queue)
}

// wait returns once cond holds for the queue length, woken by each
// change; false if it still does not after a generous deadline (a bound
// for a failing test, never what makes one pass).
func (w *queueWatch) wait(cond func(n int) bool) bool {
	timeout := time.After(30 * time.Second)
	for !cond(w.len()) {
		select {
		case <-w.changed:
		case <-timeout:
			return false
		}
	}
	return true
}

// waitLen waits until n requests are queued, failing the test if they
// never are.
func (w *queueWatch) waitLen(t *testing.T, n int) {
	t.Helper()
	if !w.wait(func(got int) bool { return got == n }) {
		t.Fatalf("gave up waiting for %d queued transactions (%d queued)", n, w.len())
	}
}

// TestBatchMixesFailedCheck: one batch holds a transfer that succeeds, a
// transfer whose check fails against the state the first one left (in the
// same batch, not yet logged), and an unrelated put. The failing one is
// refused and changes nothing; the others commit with consecutive
// indexes; no reader ever sees the balance total broken.
func TestBatchMixesFailedCheck(t *testing.T) {
	s, held, release, waitQueued := heldBatch(t)
	ctx := context.Background()
	move := func(from, to string, n int64) *Txn {
		return &Txn{Ops: []Op{
			{Kind: OpAdd, Key: from, Delta: -n},
			{Kind: OpAdd, Key: to, Delta: n},
			{Kind: OpCheck, Key: from, Check: CheckMin, Min: 0},
		}}
	}
	type result struct {
		idx uint64
		err error
	}
	var stop atomic.Bool
	readerErr := make(chan error, 1)
	go func() {
		for !stop.Load() {
			snap := s.Snapshot()
			total := int64(0)
			for _, k := range []string{"a", "b", "c"} {
				v, _ := snap.Get(k)
				n, _ := strconv.ParseInt(string(v), 10, 64)
				total += n
			}
			if snap.Index() > 0 && total != 5 {
				readerErr <- fmt.Errorf("index %d: a+b+c = %d, want 5", snap.Index(), total)
				return
			}
		}
		readerErr <- nil
	}()
	lead := make(chan result, 1)
	go func() { i, err := s.Put(ctx, "a", []byte("5")); lead <- result{i, err} }()
	<-held // the leader waits before taking the queue: it holds only its own put
	txns := []*Txn{move("a", "b", 3), move("a", "c", 5), {Ops: []Op{{Kind: OpPut, Key: "x", Value: []byte("1")}}}}
	results := make([]chan result, len(txns))
	for i, txn := range txns {
		results[i] = make(chan result, 1)
		go func() { idx, err := s.Commit(ctx, txn); results[i] <- result{idx, err} }()
		waitQueued(i + 2)
	}
	release()
	first := <-lead
	got := make([]result, len(txns))
	for i := range txns {
		got[i] = <-results[i]
	}
	stop.Store(true)
	if err := <-readerErr; err != nil {
		t.Fatal(err)
	}
	var ce *CheckError
	if first.err != nil || got[0].err != nil || got[2].err != nil || !errors.As(got[1].err, &ce) || ce.Op != 2 {
		t.Fatalf("put a: %v; a->b 3: %v; a->c 5: %v; put x: %v; want only a->c refused by its check (op 2)",
			first.err, got[0].err, got[1].err, got[2].err)
	}
	if got[0].idx != first.idx+1 || got[2].idx != first.idx+2 {
		t.Fatalf("indexes %d, %d, %d: want the batch's logged transactions consecutive", first.idx, got[0].idx, got[2].idx)
	}
	want := map[string]string{"a": "2", "b": "3", "x": "1"}
	for k, v := range want {
		if g, ok := s.Get(k); !ok || string(g) != v {
			t.Fatalf("%s = %q (%v), want %q", k, g, ok, v)
		}
	}
	if g, ok := s.Get("c"); ok {
		t.Fatalf("c = %q: the refused transfer changed it", g)
	}
}

// TestBatchAbandonedRequest: a caller that gives up (its context) while its
// transaction waits for a leader gets the context's error, and the leader
// neither commits its transaction nor hands it the lead.
func TestBatchAbandonedRequest(t *testing.T) {
	s, held, release, waitQueued := heldBatch(t)
	ctx := context.Background()
	lead := make(chan error, 1)
	go func() { _, err := s.Put(ctx, "a", []byte("1")); lead <- err }()
	<-held
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() { _, err := s.Put(cctx, "gone", []byte("1")); gaveUp <- err }()
	waitQueued(2)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned commit: %v, want context.Canceled", err)
	}
	release()
	if err := <-lead; err != nil {
		t.Fatal(err)
	}
	// The lead passed on (or was given up): later commits go through.
	if _, err := s.Put(ctx, "b", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("gone"); ok {
		t.Fatal("the abandoned transaction was committed")
	}
}
