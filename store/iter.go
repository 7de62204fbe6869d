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
type Iter struct {
	its  []btree.IterG[item]
	cur  []item   // the current item of each shard's iterator
	live []bool   // whether it has one
	keys []string // cur[i].p.key, read without following the pointer
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
		keys: make([]string, n), tree: make([]int, n)}
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
	if ok {
		it.cur[i] = it.its[i].Item()
		it.keys[i] = it.cur[i].p.key
	} else {
		it.cur[i], it.keys[i] = item{}, ""
	}
}

// init plays every match of the tree and reports whether there is a pair.
func (it *Iter) init() bool {
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
