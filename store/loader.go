package store

import (
	"cmp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table"
)

// loader is the replay target used at open. Inserting a million random
// keys into B-trees one by one is the cost of recovery, so instead it
// collects every effect per shard, and build sorts each shard's list
// (later effects win), drops superseded entries and deletes, and loads
// the survivors in key order (bulkLoad builds the nodes bottom-up), shards in
// parallel.
//
// The base checkpoint takes a faster path (LoadBase): it is in key order
// already, so its blocks are decoded in parallel, its pairs routed to
// their shards in that order (each shard's list stays sorted) with keys
// and values aliasing the decoded blocks, and build merges each shard's
// base list with its sorted effects instead of sorting a million entries.
type loader struct {
	shards [][]loadEntry
	base   [][][]item // per shard, runs of the base checkpoint's pairs, all in key order
	seq    uint64
	slab   []byte // key and value bytes, in chunks
	// pre, if set, holds the base checkpoint already decoded (Options.Base):
	// LoadBase takes its runs when it is the checkpoint to load.
	pre *BaseBlocks
}

type loadEntry struct {
	pre uint64
	key string
	val []byte
	seq uint64 // order of application: the later wins
	del bool
}

const (
	slabChunk = 1 << 20
	pairChunk = 4096
)

func newLoader(n int) *loader { return &loader{shards: make([][]loadEntry, n)} }

// Apply records one effect. The bytes are copied into a slab: one
// allocation per megabyte instead of two per effect. A slab lives as long
// as any value in it, so superseded values found by recovery can stay in
// memory until the store overwrites their neighbours; that is bounded by
// the WAL the recovery read.
func (l *loader) Apply(kind uint8, key, value []byte) {
	k := l.copyString(key)
	var v []byte
	if kind != format.TxnDelete {
		v = l.copyBytes(value)
	}
	sh := shardOf(k, len(l.shards))
	l.seq++
	l.shards[sh] = append(l.shards[sh], loadEntry{pre: keyPrefix(k), key: k, val: v, seq: l.seq, del: kind == format.TxnDelete})
}

func (l *loader) copyBytes(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	if len(b) > slabChunk/4 {
		return append([]byte(nil), b...)
	}
	if len(l.slab)+len(b) > cap(l.slab) {
		l.slab = make([]byte, 0, slabChunk)
	}
	off := len(l.slab)
	l.slab = append(l.slab, b...)
	return l.slab[off:len(l.slab):len(l.slab)]
}

// copyString copies key into the slab; the bytes are never written again,
// so the string may alias them.
func (l *loader) copyString(key []byte) string {
	if len(key) == 0 {
		return ""
	}
	b := l.copyBytes(key)
	return unsafe.String(&b[0], len(b))
}

// LoadBase routes the pairs of the base checkpoint r to their shards in
// key order (replay.BaseLoader). It is called before any Apply. The
// decoding goroutines also route (routeBlock), so this goroutine only
// strings each block's runs onto its shards' lists. A pair's key and value
// alias its decoded block, which is never written again; a block stays in
// memory as long as any of its values is in the state.
func (l *loader) LoadBase(r *checkpoint.Reader) error {
	if pre := l.pre; pre.matches(r, len(l.shards)) {
		l.base, pre.l.base, pre.taken = pre.l.base, nil, true // taken once: the BaseBlocks is spent
		return nil
	}
	l.base = make([][][]item, len(l.shards))
	return table.MapBlocks(r.Reader, 0, l.routeBlock, func(rb routed) error {
		l.addRouted(rb)
		return nil
	})
}

// addRouted strings one block's runs onto their shards' lists.
func (l *loader) addRouted(rb routed) {
	for sh := range l.base {
		if lo, hi := rb.cut[sh], rb.cut[sh+1]; hi > lo {
			l.base[sh] = append(l.base[sh], rb.items[lo:hi])
		}
	}
}

// routed is one block's pairs grouped by shard, each group in key order:
// shard i's are items[cut[i]:cut[i+1]].
type routed struct {
	items []item
	cut   []int32
}

// routeBlock groups the pairs of b by shard (a counting sort, which keeps
// each shard's pairs in the block's key order). It runs on the decoding
// goroutines, so it touches only b and what it allocates.
func (l *loader) routeBlock(b *format.Block) (routed, error) {
	n, cnt := len(l.shards), b.Len()
	pairs := make([]pair, cnt)
	shard := make([]int32, cnt)
	rb := routed{items: make([]item, cnt), cut: make([]int32, n+1)}
	for j := range cnt {
		k, v, _ := b.Entry(j)
		key := unsafe.String(unsafe.SliceData(k), len(k))
		pairs[j] = pair{key: key, val: v}
		sh := int32(shardOf(key, n))
		shard[j] = sh
		rb.cut[sh+1]++
	}
	for i := 1; i <= n; i++ {
		rb.cut[i] += rb.cut[i-1]
	}
	pos := slices.Clone(rb.cut[:n])
	for j := range cnt {
		sh := shard[j]
		rb.items[pos[sh]] = item{pre: keyPrefix(pairs[j].key), p: &pairs[j]}
		pos[sh]++
	}
	return rb, nil
}

// build returns the shard trees. It consumes the loader.
func (l *loader) build() []*tree {
	trees := make([]*tree, len(l.shards))
	next := make(chan int, len(l.shards))
	for i := range l.shards {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.GOMAXPROCS(0), len(l.shards)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var base [][]item
				if l.base != nil {
					base, l.base[i] = l.base[i], nil
				}
				trees[i] = buildTree(base, l.shards[i])
				l.shards[i] = nil
			}
		}()
	}
	wg.Wait()
	return trees
}

// buildTree builds one shard's tree from base, its pairs of the base
// checkpoint in strictly increasing key order (in runs), and es, the
// effects applied after it in any order: it sorts es (sortEffects; later
// effects win), merges the two in key order, an effect replacing or
// deleting the base pair of its key, and builds the tree from the merge
// (bulkLoad). A run
// of base pairs before the next effect is taken whole when its last pair
// is (one comparison), so the merge compares about once per run and per
// effect rather than once per pair.
func buildTree(runs [][]item, es []loadEntry) *tree {
	ord := sortEffects(es)
	n := len(es)
	for _, r := range runs {
		n += len(r)
	}
	out := make([]item, 0, n)
	var pairs []pair
	base := baseCursor{runs: runs}
	for j, o := range ord {
		e := &es[o.i]
		if j+1 < len(ord) && ord[j+1].pre == o.pre && ord[j+1].pre2 == o.pre2 && es[ord[j+1].i].key == e.key {
			continue // superseded by a later effect
		}
		out = base.takeBefore(out, e.pre, e.key)
		if base.ok() && base.item().pre == e.pre && base.item().p.key == e.key {
			base.next() // replaced or deleted by e
		}
		if e.del {
			continue
		}
		if len(pairs) == cap(pairs) {
			pairs = make([]pair, 0, pairChunk)
		}
		pairs = append(pairs, pair{key: e.key, val: e.val})
		out = append(out, item{pre: e.pre, p: &pairs[len(pairs)-1]})
	}
	for ; base.ok(); base.runs, base.i = base.runs[1:], 0 {
		out = append(out, base.runs[0][base.i:]...)
	}
	t := newTree()
	bulkLoad(t, out)
	return t
}

// effectKey is what sortEffects sorts for one effect: its place in the
// list and its key's first 16 bytes as two integers.
type effectKey struct {
	pre, pre2 uint64
	i         int
}

// sortEffects returns es's order by key, and for one key by application
// (the later last). It sorts small keys rather than the effects: moving
// the 64-byte effects, pointers and all (write barriers while the
// collector runs), was most of the sort's time, and the second 8 bytes
// settle most comparisons that the first leave tied (keys of one table
// often share those: a joining member's snapshot tail was "run/0000..."
// throughout) without reaching the strings.
func sortEffects(es []loadEntry) []effectKey {
	ord := make([]effectKey, len(es))
	for i := range es {
		ord[i] = effectKey{pre: es[i].pre, pre2: keyPrefix2(es[i].key), i: i}
	}
	slices.SortFunc(ord, func(a, b effectKey) int {
		if a.pre != b.pre {
			return cmp.Compare(a.pre, b.pre)
		}
		if a.pre2 != b.pre2 {
			return cmp.Compare(a.pre2, b.pre2)
		}
		if c := strings.Compare(es[a.i].key, es[b.i].key); c != 0 {
			return c
		}
		return cmp.Compare(es[a.i].seq, es[b.i].seq)
	})
	return ord
}

// keyPrefix2 is keyPrefix of the key's bytes after the first 8.
func keyPrefix2(key string) uint64 {
	if len(key) <= 8 {
		return 0
	}
	return keyPrefix(key[8:])
}

// baseCursor walks runs of items as one sequence.
type baseCursor struct {
	runs [][]item
	i    int // position in runs[0]
}

func (c *baseCursor) ok() bool   { return len(c.runs) > 0 }
func (c *baseCursor) item() item { return c.runs[0][c.i] }

func (c *baseCursor) next() {
	if c.i++; c.i == len(c.runs[0]) {
		c.runs, c.i = c.runs[1:], 0
	}
}

// takeBefore appends to out the items ordered before the key with prefix
// pre and moves past them: whole runs while a run's last item is before
// it, then the part of the run that is.
func (c *baseCursor) takeBefore(out []item, pre uint64, key string) []item {
	for c.ok() {
		run := c.runs[0][c.i:]
		if itemKeyLess(run[len(run)-1], pre, key) {
			out = append(out, run...)
			c.runs, c.i = c.runs[1:], 0
			continue
		}
		j, _ := slices.BinarySearchFunc(run, key, func(it item, key string) int {
			if it.pre != pre {
				return cmp.Compare(it.pre, pre)
			}
			return strings.Compare(it.p.key, key)
		})
		c.i += j
		return append(out, run[:j]...)
	}
	return out
}

// itemKeyLess reports whether it orders before the key with prefix pre.
func itemKeyLess(it item, pre uint64, key string) bool {
	if it.pre != pre {
		return it.pre < pre
	}
	return it.p.key < key
}
