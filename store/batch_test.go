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
// the queue, until the test calls release; queued reports how many
// requests wait.
func heldBatch(t *testing.T) (s *Store, held <-chan struct{}, release func(), queued func() int) {
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
	queued = func() int {
		s.batcher.mu.Lock()
		defer s.batcher.mu.Unlock()
		return len(s.batcher.queue)
	}
	return s, h, release, queued
}

// waitUntil polls cond (the store's state) until it holds, and fails the
// test after a generous deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestBatchMixesFailedCheck: one batch holds a transfer that succeeds, a
// transfer whose check fails against the state the first one left (in the
// same batch, not yet logged), and an unrelated put. The failing one is
// refused and changes nothing; the others commit with consecutive
// indexes; no reader ever sees the balance total broken.
func TestBatchMixesFailedCheck(t *testing.T) {
	s, held, release, queued := heldBatch(t)
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
		waitUntil(t, "the transaction to be queued", func() bool { return queued() == i+2 })
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
	s, held, release, queued := heldBatch(t)
	ctx := context.Background()
	lead := make(chan error, 1)
	go func() { _, err := s.Put(ctx, "a", []byte("1")); lead <- err }()
	<-held
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() { _, err := s.Put(cctx, "gone", []byte("1")); gaveUp <- err }()
	waitUntil(t, "the transaction to be queued", func() bool { return queued() == 2 })
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
