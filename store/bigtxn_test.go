package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// TestLargeTxnOneEffectPerKey commits a transaction with many operations
// that write some keys more than once, past the point where staging looks
// effects up in a map: its WAL record must hold one effect per key, the
// last, and a reopen must see the final values.
func TestLargeTxnOneEffectPerKey(t *testing.T) {
	m := vfs.NewMem()
	s, err := Open(Options{FS: m, Dir: "/data", Create: true, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	txn := &Txn{}
	for i := 0; i < 3*effectIndexFrom; i++ {
		txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: fmt.Sprintf("k%03d", i), Value: []byte("first")})
	}
	for _, i := range []int{1, effectIndexFrom + 2, 2 * effectIndexFrom} {
		txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: fmt.Sprintf("k%03d", i), Value: []byte("second")})
	}
	txn.Ops = append(txn.Ops, Op{Kind: OpDelete, Key: "k003"}, Op{Kind: OpAdd, Key: "k004n", Delta: 5}, Op{Kind: OpAdd, Key: "k004n", Delta: 6})
	idx, err := s.Commit(context.Background(), txn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	r, err := segment.NewReader(m, filepath.Join("/data", format.WALDir), idx)
	if err != nil {
		t.Fatal(err)
	}
	e, err := r.Next()
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	format.DecodeTxnRecord(e.Data, func(_ uint8, key, _ []byte) { seen[string(key)]++ })
	for k, n := range seen {
		if n != 1 {
			t.Errorf("key %s has %d effects in the record", k, n)
		}
	}
	if len(seen) != 3*effectIndexFrom+1 {
		t.Errorf("the record has %d keys, want %d", len(seen), 3*effectIndexFrom+1)
	}
	s, err = Open(Options{FS: m, Dir: "/data"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for k, want := range map[string]string{"k001": "second", "k018": "second", "k032": "second", "k000": "first", "k004n": "11"} {
		if v, ok := s.Get(k); !ok || string(v) != want {
			t.Errorf("%s = %q %v, want %q", k, v, ok, want)
		}
	}
	if _, ok := s.Get("k003"); ok {
		t.Error("k003 survived its delete")
	}
}
