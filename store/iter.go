package store

import (
	"github.com/tidwall/btree"

	"github.com/kvtool/kvtool/vfs"
)

// FS returns the file system the store's directory is on (readers of its
// files, such as package query, use it rather than assume vfs.Default).
func (s *Store) FS() vfs.FS { return s.fs }

// Iter walks the pairs of a snapshot in key order across all shards,
// forward (after SeekGE) or backward (after SeekLT or Last). It is a pull
// iterator, for callers that cannot take a callback (a SQL cursor). An Iter
// is not safe for concurrent use; the snapshot it reads stays unchanged.
// Release it when done.
//
// The shards are merged with a loser tree: each step compares the next
// key of the shard that just moved against log2(shards) keys, one per
// level, where a binary heap compares up to twice per level; and each
// shard's current key is kept beside the tree, so a comparison reads no
// tree iterator or pair. A range scan spends most of its time here.
//
// A comparison is mostly of two integers (abbreviated keys): the keys a
// scan meets at one time tend to share a prefix (a range's keys share the
// prefix of its bounds), after which 8 bytes usually tell them apart. So
// the iterator keeps the length of a prefix every current key has (off,
// at most 8, shortened when a key without it arrives) and each key's next
// 8 bytes as a big-endian integer (abbr); only keys whose 8 bytes are
// equal are compared as strings.
type Iter struct {
	its  []btree.IterG[item]
	cur  []item   // the current item of each shard's iterator
	live []bool   // whether it has one
	keys []string // cur[i].p.key, read without following the pointer
	// abbr[i] is keys[i][off:off+8], big-endian, zero-padded: for keys
	// that both start with base[:off], comparing abbr orders them as
	// comparing the keys does, or is equal.
	abbr []uint64
	off  int
	base string // a key all live current keys share base[:off] with
	// baseMask keeps the first min(off, 8) bytes of an item's pre, which
	// must equal basePre's for its key to start with base[:off]: most
	// keys are checked without reading their bytes.
	basePre, baseMask uint64
	// tree is the loser tree over the shards: tree[0] is the shard with
	// the current pair, tree[n] (n >= 1) the loser of the match at node n,
	// whose children are nodes 2n and 2n+1; shard i is leaf len(its)+i.
	tree []int
	desc bool
}

// Iter returns an unpositioned iterator over the snapshot: call SeekGE,
// SeekLT or Last first.
func (s *Snapshot) Iter() *Iter {
	n := len(s.shards)
	it := &Iter{its: make([]btree.IterG[item], n), cur: make([]item, n), live: make([]bool, n),
		keys: make([]string, n), abbr: make([]uint64, n), tree: make([]int, n)}
	for i, t := range s.shards {
		it.its[i] = t.Iter()
	}
	return it
}

// SeekGE positions the iterator at the first pair with a key >= key and
// makes Next go forward. It reports whether there is such a pair.
func (it *Iter) SeekGE(key string) bool {
	it.desc = false
	pr := probe(key)
	for i := range it.its {
		it.set(i, it.its[i].Seek(pr))
	}
	unprobe(pr)
	return it.init()
}

// SeekLT positions the iterator at the last pair with a key < key and
// makes Next go backward. It reports whether there is such a pair.
func (it *Iter) SeekLT(key string) bool {
	it.desc = true
	pr := probe(key)
	for i := range it.its {
		// Seek finds the first item >= key; the one before it is the last
		// item < key. With no item >= key, that is the shard's last item.
		ok := it.its[i].Seek(pr)
		if ok {
			ok = it.its[i].Prev()
		} else {
			ok = it.its[i].Last()
		}
		it.set(i, ok)
	}
	unprobe(pr)
	return it.init()
}

// Last positions the iterator at the last pair and makes Next go backward.
func (it *Iter) Last() bool {
	it.desc = true
	for i := range it.its {
		it.set(i, it.its[i].Last())
	}
	return it.init()
}

// set records whether shard i's iterator has a current item, and which.
func (it *Iter) set(i int, ok bool) {
	it.live[i] = ok
	if !ok {
		it.cur[i], it.keys[i] = item{}, ""
		return
	}
	it.cur[i] = it.its[i].Item()
	k := it.cur[i].p.key
	it.keys[i] = k
	if it.off > 0 && !it.hasBase(it.cur[i].pre, k) {
		it.shorten(k)
	}
	it.abbr[i] = abbrev(k, it.off)
}

// hasBase reports whether k (whose item has pre) starts with base[:off]
// (off is at most 8: init).
func (it *Iter) hasBase(pre uint64, k string) bool {
	return len(k) >= it.off && (pre^it.basePre)&it.baseMask == 0
}

// shorten makes off the length of the prefix k shares with base, and
// abbreviates every live key again from there.
func (it *Iter) shorten(k string) {
	n := 0
	for n < it.off && n < len(k) && k[n] == it.base[n] {
		n++
	}
	it.setOff(n)
	for j, live := range it.live {
		if live {
			it.abbr[j] = abbrev(it.keys[j], n)
		}
	}
}

// setOff makes off n, with the mask that goes with it.
func (it *Iter) setOff(n int) {
	it.off = n
	it.baseMask = ^uint64(0) << (8 * (8 - uint(n))) // 0 for n == 0
}

// abbrev is k[off:off+8] as a big-endian integer, zero-padded.
func abbrev(k string, off int) uint64 {
	if len(k) >= off+8 {
		b := k[off : off+8]
		return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
			uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	}
	var v uint64
	for j := off; j < len(k); j++ {
		v = v<<8 | uint64(k[j])
	}
	return v << (8 * (8 - uint(len(k)-off)))
}

// init plays every match of the tree and reports whether there is a pair.
// It first takes off as long as every live key allows (set only shortens
// it) and abbreviates each key from there.
func (it *Iter) init() bool {
	off, first := 0, true
	it.base, it.basePre = "", 0
	for i, live := range it.live {
		switch {
		case !live:
		case first:
			it.base, it.basePre, off, first = it.keys[i], it.cur[i].pre, len(it.keys[i]), false
		default:
			k, n := it.keys[i], 0
			for n < off && n < len(k) && k[n] == it.base[n] {
				n++
			}
			off = n
		}
	}
	// At most 8: whether a key has the prefix is then read from its
	// item's pre alone, and 8 more bytes nearly always decide.
	it.setOff(min(off, 8))
	for i, live := range it.live {
		if live {
			it.abbr[i] = abbrev(it.keys[i], it.off)
		}
	}
	it.tree[0] = it.play(1)
	return it.live[it.tree[0]]
}

// play returns the winner of the subtree at node n, recording the loser of
// each match in it.
func (it *Iter) play(n int) int {
	if n >= len(it.its) {
		return n - len(it.its)
	}
	a, b := it.play(2*n), it.play(2*n+1)
	if it.beats(b, a) {
		a, b = b, a
	}
	it.tree[n] = b
	return a
}

// beats reports whether shard a's current pair comes before shard b's in
// the walk's order; a shard with none comes after every other. (Shards
// hold disjoint keys: there are no ties between live shards.)
func (it *Iter) beats(a, b int) bool {
	switch {
	case !it.live[a]:
		return false
	case !it.live[b]:
		return true
	case it.abbr[a] != it.abbr[b]:
		return (it.abbr[a] < it.abbr[b]) != it.desc
	case it.desc:
		return it.keys[a] > it.keys[b]
	}
	return it.keys[a] < it.keys[b]
}

// Next moves to the next pair in the direction of the last seek and
// reports whether there is one.
func (it *Iter) Next() bool {
	w := it.tree[0]
	if !it.live[w] {
		return false
	}
	if it.desc {
		it.set(w, it.its[w].Prev())
	} else {
		it.set(w, it.its[w].Next())
	}
	// Replay w's matches from its leaf up: at each node the winner goes on.
	for n := (w + len(it.its)) / 2; n >= 1; n /= 2 {
		if it.beats(it.tree[n], w) {
			it.tree[n], w = w, it.tree[n]
		}
	}
	it.tree[0] = w
	return it.live[w]
}

// Key returns the current key.
func (it *Iter) Key() string { return it.keys[it.tree[0]] }

// Value returns the current value; it must not be modified.
func (it *Iter) Value() []byte { return it.cur[it.tree[0]].p.val }

// Release frees the shard iterators.
func (it *Iter) Release() {
	for i := range it.its {
		it.its[i].Release()
		it.live[i] = false
	}
}
