package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// Iter walks the same pairs as Scan, forward from any SeekGE and backward
// from any SeekLT or Last, across shards.
func TestIterMatchesScan(t *testing.T) {
	for _, shards := range []int{1, 2, 5, 16} {
		t.Run(fmt.Sprint(shards), func(t *testing.T) { testIterMatchesScan(t, shards) })
	}
}

// Keys that share long prefixes, are prefixes of each other, end in NUL
// or 0xff, and differ only past their first 8 bytes after a shared
// prefix: the cases abbreviated keys (Iter.abbr) must order right,
// including scans that leave one shared prefix for another.
func TestIterAbbreviatedKeys(t *testing.T) {
	for _, shards := range []int{2, 16} {
		t.Run(fmt.Sprint(shards), func(t *testing.T) {
			s, err := Open(Options{Dir: t.TempDir(), Create: true, Shards: shards})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r := rand.New(rand.NewPCG(3, 4))
			prefixes := []string{"", "x", "xyzxyzxyzxyz/", "xyzxyzxyzxyz/\x00", "p12:", "p13:", "p12:\xff\xff\xff\xff\xff\xff\xff\xff"}
			tail := []string{"\x00", "a", "b", "\xff"}
			txn := &Txn{}
			for i := 0; i < 1500; i++ {
				k := prefixes[r.IntN(len(prefixes))]
				for n := r.IntN(13); n > 0 || k == ""; n-- {
					k += tail[r.IntN(len(tail))]
				}
				txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: k, Value: []byte{1}})
			}
			// Keys shorter than a shared prefix that ends in NULs, whose
			// zero-padded 8 bytes look as if they had it.
			for _, k := range []string{"q", "q\x00", "q\x00\x00", "q\x00\x00a", "q\x00\x00b", "q\x00\x00c", "q\x00\x00\x00"} {
				txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: k, Value: []byte{1}})
			}
			if _, err := s.Commit(context.Background(), txn); err != nil {
				t.Fatal(err)
			}
			snap := s.Snapshot()
			var keys []string
			snap.Scan(ScanOptions{}, func(k string, _ []byte) bool { keys = append(keys, k); return true })
			it := snap.Iter()
			defer it.Release()
			walk := func(ok bool) []string {
				var out []string
				for ; ok; ok = it.Next() {
					out = append(out, it.Key())
				}
				return out
			}
			seeks := append([]string{"", "p12:", "p12:\xff", "xyzxyzxyzxyz/", "xyzxyzxyzxyz/\x00a", "z", "q\x00\x00\x01", "q\x01"}, keys[:50]...)
			for _, seek := range seeks {
				from, _ := slices.BinarySearch(keys, seek)
				if got := walk(it.SeekGE(seek)); !slices.Equal(got, keys[from:]) {
					t.Fatalf("SeekGE(%q): %d keys, want %d", seek, len(got), len(keys)-from)
				}
				want := slices.Clone(keys[:from])
				slices.Reverse(want)
				if got := walk(it.SeekLT(seek)); !slices.Equal(got, want) {
					t.Fatalf("SeekLT(%q): %d keys, want %d", seek, len(got), len(want))
				}
			}
		})
	}
}

func testIterMatchesScan(t *testing.T, shards int) {
	s, err := Open(Options{Dir: t.TempDir(), Create: true, Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 2))
	txn := &Txn{}
	for i := 0; i < 500; i++ {
		txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: fmt.Sprintf("k%03d", r.IntN(900)), Value: []byte{byte(i)}})
	}
	if _, err := s.Commit(context.Background(), txn); err != nil {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	var keys []string
	snap.Scan(ScanOptions{}, func(k string, _ []byte) bool { keys = append(keys, k); return true })
	it := snap.Iter()
	defer it.Release()
	walk := func(ok bool) []string {
		var out []string
		for ; ok; ok = it.Next() {
			v, _ := snap.Get(it.Key())
			if !slices.Equal(v, it.Value()) {
				t.Fatalf("value of %s: %x, Get says %x", it.Key(), it.Value(), v)
			}
			out = append(out, it.Key())
		}
		return out
	}
	for _, seek := range []string{"", "k", "k000", "k450", "k4505", "k899", "k9", "z"} {
		from, _ := slices.BinarySearch(keys, seek)
		if got := walk(it.SeekGE(seek)); !slices.Equal(got, keys[from:]) {
			t.Errorf("SeekGE(%q): %d keys, want %d", seek, len(got), len(keys)-from)
		}
		want := slices.Clone(keys[:from])
		slices.Reverse(want)
		if got := walk(it.SeekLT(seek)); !slices.Equal(got, want) {
			t.Errorf("SeekLT(%q): %d keys, want %d", seek, len(got), len(want))
		}
	}
	all := slices.Clone(keys)
	slices.Reverse(all)
	if got := walk(it.Last()); !slices.Equal(got, all) {
		t.Errorf("Last: %d keys, want %d", len(got), len(all))
	}
}
