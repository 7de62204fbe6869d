package store

import (
	"context"
	"errors"
	"testing"

	"github.com/kvtool/kvtool/vfs"
)

// TestApplyTxnsAtRun: entries applied as one run decide each on the state
// after the ones before it (the run's included); one that fails a check,
// or is invalid, writes only its abort record, and the others apply;
// readers see the run whole (one publication at its last index); and the
// WAL holds one record per entry, so a restart rebuilds the same state.
func TestApplyTxnsAtRun(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	s := openReplica(t, fs)
	if _, _, err := s.ApplyTxnAt(ctx, 1, &Txn{Ops: []Op{{Kind: OpPut, Key: "x", Value: []byte("0")}}}); err != nil {
		t.Fatal(err)
	}
	put := func(k, v string) Op { return Op{Kind: OpPut, Key: k, Value: []byte(v)} }
	abort := []Op{put("aborted", "3")}
	ents := []EntryTxn{
		{Txn: &Txn{Ops: []Op{put("a", "5"), {Kind: OpAdd, Key: "x", Delta: 1}}}},
		// Sees entry 2's a = 5: its add of -10 fails the check, and
		// neither its put of b nor its add lands, only its abort record.
		{Txn: &Txn{Ops: []Op{put("b", "1"), {Kind: OpAdd, Key: "a", Delta: -10}, {Kind: OpCheck, Key: "a", Check: CheckMin, Min: 0}}}, OnAbort: abort},
		{}, // a no-op
		{Txn: &Txn{}, OnAbort: []Op{put("invalid", "5")}}, // invalid: its abort record
		// Sees entry 2's a and x, and nothing of entry 3.
		{Txn: &Txn{Ops: []Op{{Kind: OpCheck, Key: "b", Check: CheckAbsent}, {Kind: OpAdd, Key: "a", Delta: 1}, {Kind: OpAdd, Key: "x", Delta: 1}}}},
	}
	published := s.Snapshot()
	wait, checkErrs, err := s.ApplyTxnsAt(ctx, 2, ents)
	if err != nil {
		t.Fatal(err)
	}
	if published.Index() != 1 {
		t.Fatalf("the snapshot taken before moved to %d", published.Index())
	}
	var ce *CheckError
	if checkErrs[0] != nil || !errors.As(checkErrs[1], &ce) || ce.Op != 2 || checkErrs[2] != nil ||
		!errors.Is(checkErrs[3], ErrInvalid) || checkErrs[4] != nil {
		t.Fatalf("check errors %v, want nil, a CheckError at op 2, nil, ErrInvalid, nil", checkErrs)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"x": "2", "a": "6", "b": "", "aborted": "3", "invalid": "5"}
	check := func(s *Store) {
		t.Helper()
		snap := s.Snapshot()
		if snap.Index() != 6 {
			t.Fatalf("published index %d, want 6", snap.Index())
		}
		for k, w := range want {
			if v, _ := snap.Get(k); string(v) != w {
				t.Fatalf("%s = %q, want %q", k, v, w)
			}
		}
	}
	check(s)
	if _, _, err := s.ApplyTxnsAt(ctx, 8, ents[:1]); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("gap: %v, want ErrOutOfOrder", err)
	}
	hash := s.Snapshot().Hash()
	s.Close()
	s = openReplica(t, fs)
	defer s.Close()
	check(s)
	if got := s.Snapshot().Hash(); got != hash {
		t.Fatalf("state hash %x after a restart, %x before", got, hash)
	}
}
