package store

import (
	"cmp"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	"github.com/kvtool/kvtool/format"
)

// loader is the replay target used at open. Inserting a million random
// keys into B-trees one by one is the cost of recovery, so instead it
// collects every effect per shard, and build sorts each shard's list
// (later effects win), drops superseded entries and deletes, and loads
// the survivors in key order (tidwall's append-only Load path), shards in
// parallel.
type loader struct {
	shards [][]loadEntry
	seq    uint64
	slab   []byte // key and value bytes, in chunks
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
				trees[i] = buildTree(l.shards[i])
				l.shards[i] = nil
			}
		}()
	}
	wg.Wait()
	return trees
}

func buildTree(es []loadEntry) *tree {
	slices.SortFunc(es, func(a, b loadEntry) int {
		if c := cmp.Compare(a.pre, b.pre); c != 0 {
			return c
		}
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	t := newTree()
	var pairs []pair
	for i := range es {
		e := &es[i]
		if e.del || (i+1 < len(es) && es[i+1].key == e.key) {
			continue // deleted, or superseded by a later effect
		}
		if len(pairs) == cap(pairs) {
			pairs = make([]pair, 0, pairChunk)
		}
		pairs = append(pairs, pair{key: e.key, val: e.val})
		t.Load(item{pre: e.pre, p: &pairs[len(pairs)-1]})
	}
	return t
}
