package query

import (
	"context"
	"testing"

	"github.com/kvtool/kvtool/store"
)

// openStore opens a fresh store in a temp directory.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Create: true, Shards: 4, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func put(t testing.TB, st *store.Store, kvs ...string) uint64 {
	t.Helper()
	txn := &store.Txn{}
	for i := 0; i+1 < len(kvs); i += 2 {
		txn.Ops = append(txn.Ops, store.Op{Kind: store.OpPut, Key: kvs[i], Value: []byte(kvs[i+1])})
	}
	idx, err := st.Commit(context.Background(), txn)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func del(t testing.TB, st *store.Store, keys ...string) uint64 {
	t.Helper()
	txn := &store.Txn{}
	for _, k := range keys {
		txn.Ops = append(txn.Ops, store.Op{Kind: store.OpDelete, Key: k})
	}
	idx, err := st.Commit(context.Background(), txn)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// openSession opens a session over the store's live snapshot and files.
func openSession(t testing.TB, st *store.Store, opts Options) *Session {
	t.Helper()
	s, err := Open(context.Background(), Source{Dir: st.Dir(), Snapshot: st.Snapshot(), Leases: st.Leases}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openDir opens a session over a data directory's files.
func openDir(t testing.TB, dir string, opts Options) *Session {
	t.Helper()
	s, err := Open(context.Background(), Source{Dir: dir}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// all runs a query and returns its rows, each formatted as one string.
func all(t testing.TB, s *Session, q string, args ...any) []string {
	t.Helper()
	rows, err := queryAll(s, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return rows
}

func queryAll(s *Session, q string, args ...any) ([]string, error) {
	rows, err := s.Query(context.Background(), q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		out = append(out, formatRow(rows.Values()))
	}
	return out, rows.Err()
}
