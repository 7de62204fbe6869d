package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// syncGate is an injector that holds the next fsync of a WAL segment until
// the test releases it, with the error the test chooses. Only a segment
// file counts: the log's background worker also syncs the spare it
// prepares (a temporary file in the same directory), and holding that one
// instead let the transaction under test become durable (a flake, about
// one run in thirty under -race).
type syncGate struct {
	armed   atomic.Bool
	reached chan struct{}
	release chan error
}

func newSyncGate() *syncGate {
	return &syncGate{reached: make(chan struct{}), release: make(chan error, 1)}
}

func (g *syncGate) MaybeError(op vfs.Op, path string) error {
	_, segFile := format.ParseSegmentName(filepath.Base(path))
	if op != vfs.OpSync || !strings.Contains(path, "/"+format.WALDir+"/") || !segFile || !g.armed.CompareAndSwap(true, false) {
		return nil
	}
	close(g.reached)
	return <-g.release
}

// TestFailedCheckRestsOnDurableState: a transaction A puts k=v1 and its
// fsync is held; a transaction B whose check fails against v1 (logged, not
// durable) must not report before A's fate is known. Then: if the fsync
// fails, B reports the store's failure and never the value v1, which never
// existed; if it succeeds, B reports v1, now durable; if the state moved
// on in between, B is decided again and commits.
func TestFailedCheckRestsOnDurableState(t *testing.T) {
	cases := []struct {
		name    string
		syncErr error
		movedOn bool // a third transaction puts k back to v0 while B waits
	}{
		{"fsync fails", errors.New("EIO on fsync"), false},
		{"fsync succeeds", nil, false},
		{"state moves on", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gate := newSyncGate()
			s, err := Open(Options{FS: vfs.NewErrorFS(vfs.NewMem(), gate), Dir: "/d", Create: true, SegmentSize: 256 << 10})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			if _, err := s.Put(ctx, "k", []byte("v0")); err != nil {
				t.Fatal(err)
			}
			waiting, proceed := make(chan uint64, 1), make(chan struct{})
			s.checkWaitHook = func(idx uint64) { waiting <- idx; <-proceed }
			var releaseOnce, proceedOnce sync.Once
			release := func(err error) { releaseOnce.Do(func() { gate.release <- err }) }
			letGo := func() { proceedOnce.Do(func() { close(proceed) }) }
			defer func() { release(nil); letGo() }()

			gate.armed.Store(true)
			aDone := make(chan error, 1)
			go func() { _, err := s.Put(ctx, "k", []byte("v1")); aDone <- err }()
			<-gate.reached // A is logged and staged; its fsync is held
			bDone := make(chan error, 1)
			go func() {
				_, err := s.Commit(ctx, &Txn{Ops: []Op{
					{Kind: OpCheck, Key: "k", Check: CheckEquals, Value: []byte("v0")},
					{Kind: OpPut, Key: "b", Value: []byte("done")},
				}})
				bDone <- err
			}()
			select {
			case err := <-bDone:
				t.Fatalf("B was decided against a value that is not durable yet: %v", err)
			case <-waiting:
			}
			var cIdx uint64
			release(tc.syncErr)
			aErr := <-aDone
			if tc.movedOn {
				if cIdx, err = s.Put(ctx, "k", []byte("v0")); err != nil {
					t.Fatal(err)
				}
			}
			letGo()
			bErr := <-bDone

			switch {
			case tc.syncErr != nil:
				if aErr == nil {
					t.Fatal("A was acknowledged although its fsync failed")
				}
				var ce *CheckError
				if errors.As(bErr, &ce) || !errors.Is(bErr, ErrFailed) || strings.Contains(bErr.Error(), "v1") {
					t.Fatalf("B after the fsync failed: %v; want the store's failure, not the value that never existed", bErr)
				}
			case tc.movedOn:
				if bErr != nil {
					t.Fatalf("B after the state moved back to v0: %v", bErr)
				}
				if v, ok := s.Get("b"); !ok || string(v) != "done" || s.Snapshot().Index() <= cIdx {
					t.Fatalf("B's put not published after the re-decision: %q %v", v, ok)
				}
			default:
				var ce *CheckError
				if aErr != nil || !errors.As(bErr, &ce) || !strings.Contains(bErr.Error(), `"v1"`) {
					t.Fatalf("A: %v; B: %v; want B aborted by the durable value v1", aErr, bErr)
				}
			}
		})
	}
}

// TestRedecisionTakesGates: a transaction whose check failed against a
// value not yet durable is decided again against the published root, and
// that decision copies the trees of the shards it writes. A copy-on-write
// Copy is not read-only (it gives the copied tree a new isolation id), so
// it must be ordered with every other copy of that shard's trees: writers
// staging on the same tree, or another transaction deciding again on it.
// Without the gates the two copies race (the race detector saw it in the
// drills' bank workload, when the copies overlapped). Here the test holds
// the gate of the shard B writes, as a writer staging on it would, and
// lets B decide again with its context cancelled: B must give up waiting
// for the gate, not decide (and copy) under the writer's feet.
func TestRedecisionTakesGates(t *testing.T) {
	gate := newSyncGate()
	s, err := Open(Options{FS: vfs.NewErrorFS(vfs.NewMem(), gate), Dir: "/d", Create: true, SegmentSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Put(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	waiting, proceed := make(chan uint64, 1), make(chan struct{})
	s.checkWaitHook = func(idx uint64) { waiting <- idx; <-proceed }
	defer func() {
		select {
		case <-proceed:
		default:
			close(proceed)
		}
	}()
	gate.armed.Store(true)
	aDone := make(chan error, 1)
	go func() { _, err := s.Put(ctx, "k", []byte("v1")); aDone <- err }()
	<-gate.reached // A is logged and staged; its fsync is held
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bDone := make(chan error, 1)
	go func() {
		// B writes n first, so deciding it again copies n's shard.
		_, err := s.Commit(bctx, &Txn{Ops: []Op{
			{Kind: OpAdd, Key: "n", Delta: 1},
			{Kind: OpCheck, Key: "k", Check: CheckEquals, Value: []byte("v0")},
		}})
		bDone <- err
	}()
	<-waiting // B's check failed against v1, which is not durable yet
	gate.release <- nil
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	sh := shardOf("n", len(s.gates))
	if err := s.acquire(ctx, []int{sh}); err != nil {
		t.Fatal(err)
	}
	cancel()
	close(proceed) // B decides again, against the published root
	bErr := <-bDone
	s.release([]int{sh})
	var ce *CheckError
	if errors.As(bErr, &ce) || !errors.Is(bErr, context.Canceled) {
		t.Fatalf("B decided again while a writer held the gate of the shard it writes (%v); want it waiting for the gate, and giving up with its context", bErr)
	}
	if _, ok := s.Get("n"); ok {
		t.Fatal("B changed n")
	}
}
