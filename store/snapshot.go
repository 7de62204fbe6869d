package store

import (
	"encoding/binary"
	"strings"
	"sync"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/tidwall/btree"

	"github.com/kvtool/kvtool/format"
)

// pair is one key/value pair. Neither is modified after it is stored, so a
// reader may hold the value without copying.
type pair struct {
	key string
	val []byte
}

// item is what a shard tree holds: the first 8 bytes of the key inline
// (big-endian, zero-padded) and a pointer to the pair. A commit copies the
// nodes on its path (copy-on-write), so items are kept small (16 bytes; a
// {key, value} item of 40 bytes made node copies 80% of a commit's
// allocation), and the inline prefix settles almost every comparison
// without following the pointer (Pebble's abbreviated keys): following it
// cost two cache misses per comparison.
type item struct {
	pre uint64
	p   *pair
}

type tree = btree.BTreeG[item]

func itemLess(a, b item) bool {
	if a.pre != b.pre {
		return a.pre < b.pre
	}
	return a.p.key < b.p.key
}

// keyPrefix is the first 8 bytes of key as a big-endian integer, so that
// comparing prefixes orders keys as comparing their bytes does.
func keyPrefix(key string) uint64 {
	var b [8]byte
	copy(b[:], key)
	return binary.BigEndian.Uint64(b[:])
}

// newItem returns the item holding key and val. A key of up to
// inlineKey bytes is copied into the pair's own allocation (pairInline),
// so a comparison the inline prefix cannot settle finds the key's bytes
// in the cache line it loads for the pair, instead of following a second
// pointer to a miss of its own: keys that share their first 8 bytes
// ("user/0000123", "k000000012345678") compare on those bytes at every
// level of the tree.
func newItem(key string, val []byte) item {
	if n := len(key); n > 0 && n <= inlineKey {
		pi := &pairInline{}
		copy(pi.buf[:], key)
		pi.key, pi.val = unsafe.String(&pi.buf[0], n), val
		return item{pre: keyPrefix(key), p: &pi.pair}
	}
	return item{pre: keyPrefix(key), p: &pair{key: key, val: val}}
}

// inlineKey is the longest key newItem keeps inside its pair: a pair
// (40 bytes) and 24 bytes fill one 64-byte allocation, one cache line.
const inlineKey = 24

// pairInline is a pair followed by its key's bytes.
type pairInline struct {
	pair
	buf [inlineKey]byte
}

// probes recycles search keys: a lookup through the tree's generic less
// function makes its argument escape, and a heap allocation per read
// measured 3x slower reads.
var probes = sync.Pool{New: func() any { return new(pair) }}

// probe returns an item to search for key; release it with unprobe.
func probe(key string) item {
	p := probes.Get().(*pair)
	p.key = key
	return item{pre: keyPrefix(key), p: p}
}

func unprobe(it item) {
	it.p.key = ""
	probes.Put(it.p)
}

// treeDegree trades node-copy cost on every commit against depth: 24 gives
// nodes of at most 47 items of 16 bytes. A cluster member's apply copies a
// leaf and the nodes above it for nearly every put; from 32 (63 items) to
// 24 its CPU per entry of 40 puts went down 14% and its bytes 12%
// (BenchmarkApplyBatch, 200,000 keys, three ABBA rounds), while point
// reads and the single node's commits stayed within their noise (a shard
// of 12,500 keys is three levels deep either way).
const treeDegree = 24

func newTree() *tree {
	return btree.NewBTreeGOptions(itemLess, btree.Options{Degree: treeDegree, NoLocks: true})
}

// shardOf maps a key to its shard.
func shardOf(key string, n int) int { return int(xxhash.Sum64String(key) % uint64(n)) }

// Snapshot is one published, immutable state of the store: the state after
// every log entry up to Index and none after. It is safe for concurrent use
// and stays valid (and unchanged) for as long as it is referenced. Values it
// returns must not be modified.
type Snapshot struct {
	index  uint64
	shards []*tree
}

// Index is the applied index: the last log entry this state includes.
func (s *Snapshot) Index() uint64 { return s.index }

// Shards returns the number of shards.
func (s *Snapshot) Shards() int { return len(s.shards) }

// Get returns the value of key.
func (s *Snapshot) Get(key string) ([]byte, bool) {
	pr := probe(key)
	it, ok := s.shards[shardOf(key, len(s.shards))].Get(pr)
	unprobe(pr)
	if !ok {
		return nil, false
	}
	return it.p.val, true
}

// Len returns the number of keys.
func (s *Snapshot) Len() int {
	n := 0
	for _, t := range s.shards {
		n += t.Len()
	}
	return n
}

// ScanOptions selects a key range. Empty fields do not restrict.
type ScanOptions struct {
	Prefix string // only keys with this prefix
	Start  string // keys >= Start
	End    string // keys < End
	Limit  int    // at most this many pairs (0: no limit)
}

// Scan calls fn for every pair in the range in ascending key order, across
// all shards, until fn returns false.
func (s *Snapshot) Scan(o ScanOptions, fn func(key string, val []byte) bool) {
	start := max(o.Start, o.Prefix)
	m := newMerger(s.shards, start)
	defer m.release()
	for n := 0; o.Limit <= 0 || n < o.Limit; n++ {
		it, ok := m.next()
		if !ok || (o.End != "" && it.p.key >= o.End) || !strings.HasPrefix(it.p.key, o.Prefix) {
			return
		}
		if !fn(it.p.key, it.p.val) {
			return
		}
	}
}

// Hash returns the state hash (format.StateHasher) of the snapshot.
func (s *Snapshot) Hash() uint64 {
	h := format.NewStateHasher()
	s.Scan(ScanOptions{}, func(k string, v []byte) bool {
		h.AddString(k, v)
		return true
	})
	return h.Sum64()
}

// merger yields the items of several sorted trees in one ascending order.
// Shards hold disjoint keys, so there are no ties. It keeps a small binary
// heap of per-shard iterators keyed by their current item.
type merger struct {
	its  []btree.IterG[item]
	heap []int // indexes into its, heap-ordered by current key
}

func newMerger(trees []*tree, start string) *merger {
	m := &merger{its: make([]btree.IterG[item], len(trees))}
	for i, t := range trees {
		m.its[i] = t.Iter()
		pr := probe(start)
		if m.its[i].Seek(pr) {
			m.heap = append(m.heap, i)
		}
		unprobe(pr)
	}
	for i := len(m.heap)/2 - 1; i >= 0; i-- {
		m.down(i)
	}
	return m
}

func (m *merger) key(h int) string { return m.its[m.heap[h]].Item().p.key }

func (m *merger) next() (item, bool) {
	if len(m.heap) == 0 {
		return item{}, false
	}
	top := m.heap[0]
	it := m.its[top].Item()
	if !m.its[top].Next() {
		last := len(m.heap) - 1
		m.heap[0] = m.heap[last]
		m.heap = m.heap[:last]
	}
	m.down(0)
	return it, true
}

func (m *merger) down(i int) {
	n := len(m.heap)
	for {
		l, small := 2*i+1, i
		if l < n && m.key(l) < m.key(small) {
			small = l
		}
		if r := l + 1; r < n && m.key(r) < m.key(small) {
			small = r
		}
		if small == i {
			return
		}
		m.heap[i], m.heap[small] = m.heap[small], m.heap[i]
		i = small
	}
}

func (m *merger) release() {
	for i := range m.its {
		m.its[i].Release()
	}
}
