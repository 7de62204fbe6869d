package store

import (
	"context"
	"errors"
	"testing"

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
