package store

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestBulkLayout: the mirror types match the B-tree library's layout, so
// bulkLoad builds nodes instead of falling back to Load (a new version of
// the library fails here, not silently slower).
func TestBulkLayout(t *testing.T) {
	if !bulkOK {
		t.Fatal("btreeMirror/nodeMirror no longer match github.com/tidwall/btree's BTreeG/node layout: update them (bulk.go)")
	}
}

// TestBulkLoad builds trees of many sizes with bulkLoad and checks them
// against the B-tree's invariants (every node but the root holds min..max
// items, leaves all at one depth, subtree counts, key order) and against
// a tree built by Load, through the library's own reads (Len, GetAt,
// Get, Ascend); then it changes each (sets, deletes, on a Copy too) and
// checks again.
func TestBulkLoad(t *testing.T) {
	for _, n := range []int{0, 1, 2, 31, 62, 63, 64, 65, 127, 128, 2000, 2017, 4096, 40000, 140000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			items := make([]item, n)
			for i := range items {
				items[i] = newItem(fmt.Sprintf("key/%09d", i*2), []byte(fmt.Sprint(i)))
			}
			bt, lt := newTree(), newTree()
			bulkLoad(bt, items)
			for _, it := range items {
				lt.Load(it)
			}
			checkTree(t, bt, n)
			sameTrees(t, bt, lt)
			rng := rand.New(rand.NewPCG(uint64(n), 1))
			cp, lcp := bt.Copy(), lt.Copy()
			for range min(3000, n+10) {
				k := fmt.Sprintf("key/%09d", rng.IntN(2*n+2))
				if rng.IntN(2) == 0 {
					cp.Set(newItem(k, nil))
					lcp.Set(newItem(k, nil))
				} else {
					pr := probe(k)
					cp.Delete(pr)
					lcp.Delete(pr)
					unprobe(pr)
				}
			}
			checkTree(t, cp, lcp.Len())
			sameTrees(t, cp, lcp)
			checkTree(t, bt, n) // the copy's changes left the original alone
			sameTrees(t, bt, lt)
		})
	}
}

// checkTree checks t's nodes through the mirror types.
func checkTree(t *testing.T, tr *tree, n int) {
	t.Helper()
	m := (*btreeMirror)(unsafe.Pointer(tr))
	if tr.Len() != n || m.count != n {
		t.Fatalf("tree holds %d (count %d), want %d", tr.Len(), m.count, n)
	}
	if m.root == nil {
		if n != 0 {
			t.Fatalf("no root for %d items", n)
		}
		return
	}
	leafDepth := -1
	var prev *item
	var walk func(nd *nodeMirror, depth int) int
	walk = func(nd *nodeMirror, depth int) int {
		if nd != m.root && (len(nd.items) < m.min || len(nd.items) > m.max) {
			t.Fatalf("node at depth %d holds %d items, want %d..%d", depth, len(nd.items), m.min, m.max)
		}
		if len(nd.items) == 0 || len(nd.items) > m.max {
			t.Fatalf("root holds %d items", len(nd.items))
		}
		count := len(nd.items)
		for i := range nd.items {
			if nd.children != nil {
				count += walk((*nd.children)[i], depth+1)
			}
			if prev != nil && !itemLess(*prev, nd.items[i]) {
				t.Fatalf("%q not after %q", nd.items[i].p.key, prev.p.key)
			}
			prev = &nd.items[i]
		}
		if nd.children == nil {
			if leafDepth >= 0 && leafDepth != depth {
				t.Fatalf("leaves at depths %d and %d", leafDepth, depth)
			}
			leafDepth = depth
		} else {
			if len(*nd.children) != len(nd.items)+1 {
				t.Fatalf("node of %d items has %d children", len(nd.items), len(*nd.children))
			}
			count += walk((*nd.children)[len(nd.items)], depth+1)
		}
		if count != nd.count {
			t.Fatalf("node at depth %d counts %d items, holds %d", depth, nd.count, count)
		}
		return count
	}
	walk(m.root, 0)
}

// sameTrees compares two trees through the library's reads.
func sameTrees(t *testing.T, a, b *tree) {
	t.Helper()
	ai, bi := a.Items(), b.Items()
	if len(ai) != len(bi) {
		t.Fatalf("%d items, want %d", len(ai), len(bi))
	}
	for i := range ai {
		if ai[i].p.key != bi[i].p.key {
			t.Fatalf("item %d: %q, want %q", i, ai[i].p.key, bi[i].p.key)
		}
		if g, ok := a.GetAt(i); !ok || g.p.key != ai[i].p.key {
			t.Fatalf("GetAt(%d) = %v, want %q", i, ok, ai[i].p.key)
		}
		if g, ok := a.Get(bi[i]); !ok || g.p.key != bi[i].p.key {
			t.Fatalf("Get(%q) missing", bi[i].p.key)
		}
	}
}
