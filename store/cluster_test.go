package store

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/vfs"
)

func openReplica(t *testing.T, fs vfs.FS) *Store {
	t.Helper()
	s, err := Open(Options{FS: fs, Dir: "/data", Create: true, Replica: true, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestApplyTxnAt(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	s := openReplica(t, fs)
	apply := func(idx uint64, txn *Txn) error {
		t.Helper()
		wait, checkErr, err := s.ApplyTxnAt(ctx, idx, txn)
		if err != nil {
			t.Fatalf("ApplyTxnAt(%d): %v", idx, err)
		}
		if err := wait(); err != nil {
			t.Fatalf("wait %d: %v", idx, err)
		}
		return checkErr
	}
	put := &Txn{Ops: []Op{{Kind: OpPut, Key: "a", Value: []byte("5")}, {Kind: OpAdd, Key: "b", Delta: 2}}}
	if err := apply(1, put); err != nil {
		t.Fatal(err)
	}
	failing := &Txn{Ops: []Op{{Kind: OpAdd, Key: "a", Delta: -10}, {Kind: OpCheck, Key: "a", Check: CheckMin, Min: 0}}}
	var ce *CheckError
	if err := apply(2, failing); !errors.As(err, &ce) || ce.Op != 1 {
		t.Fatalf("failing check: %v, want a CheckError at op 1", err)
	}
	if err := apply(3, nil); err != nil {
		t.Fatal(err)
	}
	if err := apply(4, &Txn{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty txn: %v, want ErrInvalid", err)
	}
	if _, _, err := s.ApplyTxnAt(ctx, 6, put); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("gap: %v, want ErrOutOfOrder", err)
	}
	if v, _ := s.GetNewest("a"); string(v) != "5" {
		t.Fatalf("GetNewest(a) = %q after the failed check, want 5", v)
	}
	check := func(s *Store) {
		t.Helper()
		snap := s.Snapshot()
		a, _ := snap.Get("a")
		b, _ := snap.Get("b")
		if snap.Index() != 4 || string(a) != "5" || string(b) != "2" {
			t.Fatalf("index %d a=%q b=%q, want 4, 5, 2", snap.Index(), a, b)
		}
	}
	check(s)
	if _, err := s.Commit(ctx, put); !errors.Is(err, ErrReplica) {
		t.Fatalf("Commit on a replica: %v", err)
	}
	s.Close()
	s = openReplica(t, fs)
	defer s.Close()
	check(s)
}

func TestApplyTxnAtNeedsReplica(t *testing.T) {
	s, err := Open(Options{FS: vfs.NewMem(), Dir: "/data", Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.ApplyTxnAt(context.Background(), 1, nil); err == nil {
		t.Fatal("ApplyTxnAt on a primary store succeeded")
	}
}

// TestApplyTxnAtPublishesBeforeFsync: a cluster's entry is durable in its
// raft log, so ApplyTxnAt publishes it while the WAL's fsync is still
// pending (it was on every cluster write's path). A delta of that state
// must then wait for the WAL: a manifest recording index 2 over a WAL
// that a crash cuts at 1 could not be reopened and applied to.
func TestApplyTxnAtPublishesBeforeFsync(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewMem()
	var holding atomic.Bool
	release := make(chan struct{})
	fs := vfs.NewErrorFS(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpSync && strings.Contains(path, "/wal/") && holding.Load() {
			<-release
		}
		return nil
	}))
	s, err := Open(Options{FS: fs, Dir: "/data", Create: true, Replica: true, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(idx uint64, v string) func() error {
		t.Helper()
		wait, checkErr, err := s.ApplyTxnAt(ctx, idx, &Txn{Ops: []Op{{Kind: OpPut, Key: "k", Value: []byte(v)}}})
		if err != nil || checkErr != nil {
			t.Fatalf("ApplyTxnAt(%d): %v, %v", idx, err, checkErr)
		}
		return wait
	}
	if err := put(1, "one")(); err != nil {
		t.Fatal(err)
	}
	holding.Store(true) // the WAL's next fsync waits for release
	wait2 := put(2, "two")
	snap := s.Snapshot()
	if v, _ := snap.Get("k"); snap.Index() != 2 || string(v) != "two" {
		close(release)
		t.Fatalf("while the WAL's fsync is held: published index %d, k=%q; want 2, \"two\" (published before the fsync)", snap.Index(), v)
	}
	// WaitDurable (a transfer's tail reading the WAL) waits for the fsync.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.WaitDurable(done, 2); !errors.Is(err, context.Canceled) {
		close(release)
		t.Fatalf("WaitDurable(2) while its fsync is held: %v, want the context's error", err)
	}
	durable := make(chan error, 1)
	go func() { durable <- s.WaitDurable(ctx, 2) }()
	waiting := make(chan uint64, 1)
	s.syncWaitHook = func(idx uint64) { waiting <- idx }
	deltaDone := make(chan error, 1)
	go func() {
		_, err := s.Delta(ctx)
		deltaDone <- err
	}()
	select {
	case err := <-deltaDone:
		close(release)
		t.Fatalf("Delta returned (%v) while entry 2 was not durable in the WAL: the manifest may run ahead of the WAL", err)
	case idx := <-waiting:
		if idx != 2 {
			t.Errorf("Delta waited for index %d, want 2", idx)
		}
	}
	holding.Store(false)
	close(release)
	if err := <-deltaDone; err != nil {
		t.Fatal(err)
	}
	if err := wait2(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-durable:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("WaitDurable(2) was not woken by the fsync")
	}
	// What a crash keeps right now reopens at index 2 and takes index 3.
	s2, err := Open(Options{FS: mem.CrashClone(vfs.CrashOptions{}), Dir: "/data", Replica: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if v, _ := s2.Snapshot().Get("k"); s2.Snapshot().Index() != 2 || string(v) != "two" {
		t.Fatalf("after a crash: index %d, k=%q; want 2, \"two\"", s2.Snapshot().Index(), v)
	}
	if _, _, err := s2.ApplyTxnAt(ctx, 3, nil); err != nil {
		t.Fatalf("after a crash, entry 3: %v", err)
	}
}
