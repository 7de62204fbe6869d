package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// TestBulkLoadDifferential builds a tree with bulkLoad and one of the same
// pairs by inserts in random order, then runs the same random operations
// on both: sets and deletes on the bulk-built tree itself (its nodes
// carry the tree's isoid, so they change in place, unlike a Copy's: the
// first half of the operations make no Copy), then Copies of either that
// are changed in turn (and the originals after them), and every read the store makes (Get, GetAt, Len, Ascend and
// Descend from a pivot, Min, Max). Keys share their first 8 bytes, as a
// table's do, and half of the operations hit a few neighbouring nodes,
// so that nodes split and merge. The trees must agree on every read and on every value, and
// the bulk-built ones keep the B-tree's invariants.
// KVTOOL_BULK_DIFF_ROUNDS runs more seeds (default 4).
func TestBulkLoadDifferential(t *testing.T) {
	rounds := 4
	if n, err := strconv.Atoi(os.Getenv("KVTOOL_BULK_DIFF_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	sizes := []int{1, 47, 48, 95, 1200, 5000}
	for seed := range rounds {
		for _, n := range sizes {
			t.Run(fmt.Sprintf("seed%d/%d", seed, n), func(t *testing.T) {
				bulkDifferential(t, uint64(seed), n)
			})
		}
	}
}

type treePair struct{ bulk, plain *tree }

func bulkDifferential(t *testing.T, seed uint64, n int) {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	key := func(i int) string { return fmt.Sprintf("table/1/%09d", i) }
	items := make([]item, n)
	for i := range items {
		items[i] = newItem(key(2*i), []byte("v"+strconv.Itoa(i)))
	}
	b, p := newTree(), newTree()
	bulkLoad(b, items)
	for _, i := range rng.Perm(n) {
		p.Set(newItem(key(2*i), []byte("v"+strconv.Itoa(i))))
	}
	clear(items) // bulkLoad keeps nothing of items
	pairs := []treePair{{b, p}}
	keySpace := 2*n + 4
	ops := 4000
	hot := 0
	for op := range ops {
		tp := &pairs[rng.IntN(len(pairs))]
		k := key(rng.IntN(keySpace))
		if op%500 == 0 {
			hot = rng.IntN(keySpace)
		}
		if rng.IntN(2) == 0 {
			// Near a hot spot, with keys between the loaded ones: enough
			// inserts into one node to split it and its parents, enough
			// deletes to merge them.
			k = fmt.Sprintf("%s/%d", key(hot+rng.IntN(8)), rng.IntN(64))
		}
		switch r := rng.IntN(100); {
		case r < 40:
			v := []byte(fmt.Sprintf("s%d", op))
			tp.bulk.Set(newItem(k, v))
			tp.plain.Set(newItem(k, v))
		case r < 70:
			pr := probe(k)
			_, ok1 := tp.bulk.Delete(pr)
			_, ok2 := tp.plain.Delete(pr)
			unprobe(pr)
			if ok1 != ok2 {
				t.Fatalf("op %d: Delete(%q) found %t, plain tree %t", op, k, ok1, ok2)
			}
		case r < 73 && op >= ops/2 && len(pairs) < 8:
			pairs = append(pairs, treePair{tp.bulk.Copy(), tp.plain.Copy()})
		case r < 80:
			pr := probe(k)
			g1, ok1 := tp.bulk.Get(pr)
			g2, ok2 := tp.plain.Get(pr)
			unprobe(pr)
			if ok1 != ok2 || ok1 && string(g1.p.val) != string(g2.p.val) {
				t.Fatalf("op %d: Get(%q) differs: %t, plain tree %t", op, k, ok1, ok2)
			}
		case r < 85:
			if tp.bulk.Len() != tp.plain.Len() {
				t.Fatalf("op %d: Len %d, plain tree %d", op, tp.bulk.Len(), tp.plain.Len())
			}
			if l := tp.plain.Len(); l > 0 {
				i := rng.IntN(l)
				g1, _ := tp.bulk.GetAt(i)
				g2, _ := tp.plain.GetAt(i)
				if g1.p == nil || g1.p.key != g2.p.key {
					t.Fatalf("op %d: GetAt(%d) differs", op, i)
				}
				m1, _ := tp.bulk.Min()
				m2, _ := tp.plain.Min()
				x1, _ := tp.bulk.Max()
				x2, _ := tp.plain.Max()
				if m1.p.key != m2.p.key || x1.p.key != x2.p.key {
					t.Fatalf("op %d: Min/Max %q/%q, plain tree %q/%q", op, m1.p.key, x1.p.key, m2.p.key, x2.p.key)
				}
			}
		default:
			limit := 1 + rng.IntN(100)
			desc := rng.IntN(2) == 0
			scan := func(tr *tree) []string {
				var out []string
				fn := func(it item) bool {
					out = append(out, it.p.key+"="+string(it.p.val))
					return len(out) < limit
				}
				pr := probe(k)
				if desc {
					tr.Descend(pr, fn)
				} else {
					tr.Ascend(pr, fn)
				}
				unprobe(pr)
				return out
			}
			s1, s2 := scan(tp.bulk), scan(tp.plain)
			if fmt.Sprint(s1) != fmt.Sprint(s2) {
				t.Fatalf("op %d: scan from %q (descending %t):\n%v\nplain tree:\n%v", op, k, desc, s1, s2)
			}
		}
	}
	for i, tp := range pairs {
		checkTree(t, tp.bulk, tp.plain.Len())
		a, c := tp.bulk.Items(), tp.plain.Items()
		if len(a) != len(c) {
			t.Fatalf("tree %d: %d items, plain tree %d", i, len(a), len(c))
		}
		for j := range a {
			if a[j].p.key != c[j].p.key || string(a[j].p.val) != string(c[j].p.val) {
				t.Fatalf("tree %d, item %d: %q=%q, plain tree %q=%q", i, j, a[j].p.key, a[j].p.val, c[j].p.key, c[j].p.val)
			}
		}
	}
}
