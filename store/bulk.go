package store

import (
	"reflect"
	"strings"
	"sync"
	"unsafe"
)

// Building a shard tree from items already in strictly increasing key
// order (a checkpoint's pairs merged with the effects after it, at open
// and when a member loads a received snapshot). tidwall's Load appends to
// the rightmost leaf but still compares every item with the one before it
// (a whole key comparison where keys share their first 8 bytes, as most
// keys of one table do), and a full leaf goes through an ordinary insert
// from the root and a split; a joining member spent 11% of its CPU in
// those comparisons and as much again in the splits' copies and regrown
// slices. bulkLoad builds the nodes level by level instead: every node
// is allocated once at its final size and nothing is compared.
//
// The order is the caller's to guarantee, and it is: a checkpoint's
// pairs are in order within each block (format.Block.Decode refuses a
// block whose keys are not) and across blocks (table's index check
// refuses overlapping or unordered key ranges and every block must match
// its index entry; Verify compares each block with the one before), and
// buildTree merges them with the sorted effects by comparing keys.
//
// The nodes are tidwall/btree's own (it has no bulk constructor), built
// through mirror types of its unexported node and tree structs. bulkOK
// says whether their layout matches the library's, field by field (names,
// offsets, types), as reflect sees it; where it does not (another version
// of the library), bulkLoad falls back to Load, and TestBulkLayout fails.

// btreeMirror is btree.BTreeG[item]'s layout (v1.8).
type btreeMirror struct {
	isoid        uint64
	mu           *sync.RWMutex
	root         *nodeMirror
	count        int
	locks        bool
	copyItems    bool
	isoCopyItems bool
	less         func(a, b item) bool
	empty        item
	max          int
	min          int
}

// nodeMirror is the layout of btree's node[item].
type nodeMirror struct {
	isoid    uint64
	count    int // items in the subtree
	items    []item
	children *[]*nodeMirror // nil for a leaf
}

// bulkOK says whether the mirror types match the library's layout.
var bulkOK = func() bool {
	lib := reflect.TypeFor[tree]()
	root, ok := lib.FieldByName("root")
	if !ok || root.Type.Kind() != reflect.Pointer {
		return false
	}
	return sameLayout(lib, reflect.TypeFor[btreeMirror]()) && sameLayout(root.Type.Elem(), reflect.TypeFor[nodeMirror]())
}()

// sameLayout reports whether the structs lib and mirror have the same
// fields (names, offsets, types) in the same order.
func sameLayout(lib, mirror reflect.Type) bool {
	if lib.Kind() != reflect.Struct || lib.Size() != mirror.Size() || lib.NumField() != mirror.NumField() {
		return false
	}
	for i := range lib.NumField() {
		a, b := lib.Field(i), mirror.Field(i)
		if a.Name != b.Name || a.Offset != b.Offset || !sameType(a.Type, b.Type) {
			return false
		}
	}
	return true
}

// sameType reports whether a library field's type a is the mirror's b:
// the same type, or the same shape around the library's node type where
// the mirror has nodeMirror (whose own layout sameLayout checks).
func sameType(a, b reflect.Type) bool {
	if a == b {
		return true
	}
	if a.Kind() != b.Kind() || a.Size() != b.Size() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Slice:
		return sameType(a.Elem(), b.Elem())
	case reflect.Struct:
		return b == reflect.TypeFor[nodeMirror]() && strings.HasPrefix(a.Name(), "node[")
	}
	return false
}

// bulkFill is the items a bulk-built node gets (as its neighbours allow):
// a node just split, as a tree grown by inserts or Load has, so that
// commits after a load copy and split nodes as they did before.
const bulkFill = treeDegree

// bulkLoad fills the empty tree t with items, which are in strictly
// increasing key order. items is not kept.
func bulkLoad(t *tree, items []item) {
	if !bulkOK || t.Len() != 0 {
		for _, it := range items {
			t.Load(it)
		}
		return
	}
	if len(items) == 0 {
		return
	}
	m := (*btreeMirror)(unsafe.Pointer(t))
	nodes, up := m.level(items, nil)
	for len(nodes) > 1 {
		nodes, up = m.level(up, nodes)
	}
	m.root, m.count = nodes[0], len(items)
}

// level builds one level of the tree: seq is the level's items in order,
// children the nodes of the level below (nil for the leaves), one more
// than seq. It returns the level's nodes and the items between them,
// which go up to the level above.
func (m *btreeMirror) level(seq []item, children []*nodeMirror) ([]*nodeMirror, []item) {
	k := nodesFor(len(seq), m.min, m.max)
	nodes, up := make([]*nodeMirror, k), make([]item, 0, k-1)
	per, extra := (len(seq)-(k-1))/k, (len(seq)-(k-1))%k
	for i := range nodes {
		sz := per
		if i < extra {
			sz++
		}
		n := &nodeMirror{isoid: m.isoid, count: sz, items: append(make([]item, 0, sz), seq[:sz]...)}
		seq = seq[sz:]
		if children != nil {
			ch := append(make([]*nodeMirror, 0, m.max+1), children[:sz+1]...)
			children = children[sz+1:]
			for _, c := range ch {
				n.count += c.count
			}
			n.children = &ch
		}
		nodes[i] = n
		if i < k-1 {
			up, seq = append(up, seq[0]), seq[1:]
		}
	}
	return nodes, up
}

// nodesFor returns how many nodes a level of n items makes (one item
// between each two goes up): one if they fit in a node, else about
// bulkFill items each, never fewer than min nor more than max.
func nodesFor(n, minItems, maxItems int) int {
	if n <= maxItems {
		return 1
	}
	// Each node takes at least bulkFill >= minItems items, and at most
	// maxItems: ceil((n+1)/(maxItems+1)) nodes are needed for that, and
	// with n > maxItems that many still get minItems each.
	return max(1, (n+1)/(max(bulkFill, minItems)+1), (n+maxItems+1)/(maxItems+1))
}
