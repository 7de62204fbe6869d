package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/vfs"
)

// TestIterDifferential checks Iter (both directions, every seek) and Scan
// (prefix, bounds, limit) against a sorted slice kept beside the store,
// not against each other: keys built from prefixes shorter and longer
// than the 8 bytes abbreviated keys read (Iter.abbr), of bytes that
// include 0x00 and 0xff, so many are prefixes of one another or equal in
// their first 8 or 16 bytes; rounds of puts and deletes change which
// shards hold which runs. KVTOOL_ITER_ROUNDS sets the rounds per seed.
func TestIterDifferential(t *testing.T) {
	rounds := 4
	if v, err := strconv.Atoi(os.Getenv("KVTOOL_ITER_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	for _, shards := range []int{1, 3, 16} {
		for seed := uint64(1); seed <= 6; seed++ {
			t.Run(fmt.Sprintf("shards%d/seed%d", shards, seed), func(t *testing.T) {
				testIterDifferential(t, shards, seed, rounds)
			})
		}
	}
}

// diffPrefixes are the runs keys start with: lengths 1 to 17 around the
// 8-byte boundary, some a prefix of another, some ending in 0x00 or 0xff.
var diffPrefixes = []string{
	"", "a", "\x00", "\xff", "abcdefg", "abcdefgh", "abcdefghi", "abcdefgh\x00", "abcdefgh\xff",
	"\xff\xff\xff\xff\xff\xff\xff", "\xff\xff\xff\xff\xff\xff\xff\xff", "\xff\xff\xff\xff\xff\xff\xff\xff\xff",
	"\x00\x00\x00\x00\x00\x00\x00\x00", "\x00\x00\x00\x00\x00\x00\x00\x00\x00",
	"p123:000000000000", "p123:0000000000001", "p124:", "p12",
}

// diffTail is what follows a prefix: bytes at both ends of the range.
var diffTail = []byte{0x00, 0x01, 'a', 'b', 0x7f, 0x80, 0xfe, 0xff}

// diffKey returns a key that starts with one of prefixes.
func diffKey(r *rand.Rand, prefixes []string) string {
	var b strings.Builder
	b.WriteString(prefixes[r.IntN(len(prefixes))])
	for n := r.IntN(11); n > 0 || b.Len() == 0; n-- {
		b.WriteByte(diffTail[r.IntN(len(diffTail))])
	}
	return b.String()
}

func testIterDifferential(t *testing.T, shards int, seed uint64, rounds int) {
	s, err := Open(Options{FS: vfs.NewMem(), Dir: "/data", Create: true, Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(seed, uint64(shards)))
	// A store holds the runs of a few prefixes only, so that the keys an
	// iterator meets share long prefixes and leave them for shorter ones.
	var prefixes []string
	for n := 1 + r.IntN(3); len(prefixes) < n; {
		prefixes = append(prefixes, diffPrefixes[r.IntN(len(diffPrefixes))])
	}
	model := map[string]string{}
	for round := 0; round < rounds; round++ {
		txn := &Txn{}
		for i := 0; i < 300; i++ {
			k := diffKey(r, prefixes)
			if _, ok := model[k]; ok && r.IntN(3) == 0 {
				txn.Ops = append(txn.Ops, Op{Kind: OpDelete, Key: k})
				delete(model, k)
				continue
			}
			v := strconv.Itoa(r.IntN(1000))
			txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: k, Value: []byte(v)})
			model[k] = v
		}
		if _, err := s.Commit(context.Background(), txn); err != nil {
			t.Fatal(err)
		}
		keys := make([]string, 0, len(model))
		for k := range model {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		checkIterAgainst(t, s.Snapshot(), keys, model, r, prefixes)
	}
}

// checkIterAgainst walks snap's Iter and Scan from many places and
// compares each walk with the sorted keys (and model's values).
func checkIterAgainst(t *testing.T, snap *Snapshot, keys []string, model map[string]string, r *rand.Rand, prefixes []string) {
	t.Helper()
	it := snap.Iter()
	defer it.Release()
	walk := func(ok bool, limit int) []string {
		var out []string
		for ; ok && len(out) < limit; ok = it.Next() {
			if string(it.Value()) != model[it.Key()] {
				t.Fatalf("value of %q: %q, want %q", it.Key(), it.Value(), model[it.Key()])
			}
			out = append(out, it.Key())
		}
		return out
	}
	desc := slices.Clone(keys)
	slices.Reverse(desc)
	if got := walk(it.Last(), len(keys)+1); !slices.Equal(got, desc) {
		t.Fatalf("Last: %d keys, want %d; first difference at %d", len(got), len(desc), firstDiff(got, desc))
	}
	seeks := []string{"", "\x00", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "abcdefgh", "p123:0000000000001\xff"}
	for range 60 {
		seeks = append(seeks, diffKey(r, diffPrefixes))
	}
	for range 20 {
		k := keys[r.IntN(len(keys))]
		seeks = append(seeks, k, k+"\x00", k[:r.IntN(len(k)+1)])
	}
	for _, seek := range seeks {
		from, _ := slices.BinarySearch(keys, seek)
		limit := len(keys) + 1
		if r.IntN(2) == 0 {
			limit = 1 + r.IntN(40) // a short walk, as a range read's limit
		}
		want := keys[from:]
		want = want[:min(len(want), limit)]
		if got := walk(it.SeekGE(seek), limit); !slices.Equal(got, want) {
			t.Fatalf("SeekGE(%q): %d keys, want %d; first difference at %d", seek, len(got), len(want), firstDiff(got, want))
		}
		back := slices.Clone(keys[:from])
		slices.Reverse(back)
		back = back[:min(len(back), limit)]
		if got := walk(it.SeekLT(seek), limit); !slices.Equal(got, back) {
			t.Fatalf("SeekLT(%q): %d keys, want %d; first difference at %d", seek, len(got), len(back), firstDiff(got, back))
		}
		checkScan(t, snap, keys, ScanOptions{Prefix: seek[:min(len(seek), r.IntN(10))]})
		checkScan(t, snap, keys, ScanOptions{Start: seek, End: seeks[r.IntN(len(seeks))], Limit: r.IntN(30)})
	}
}

// checkScan compares one Scan with the keys in its range.
func checkScan(t *testing.T, snap *Snapshot, keys []string, o ScanOptions) {
	t.Helper()
	var want []string
	for _, k := range keys {
		if k >= o.Start && (o.End == "" || k < o.End) && strings.HasPrefix(k, o.Prefix) && (o.Limit <= 0 || len(want) < o.Limit) {
			want = append(want, k)
		}
	}
	var got []string
	snap.Scan(o, func(k string, _ []byte) bool { got = append(got, k); return true })
	if !slices.Equal(got, want) {
		t.Fatalf("Scan(prefix %q, start %q, end %q, limit %d): %d keys, want %d; first difference at %d", o.Prefix, o.Start, o.End, o.Limit, len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
