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
type Iter struct {
	its  []btree.IterG[item]
	heap []int // indexes into its, ordered by current key (min-heap forward, max-heap backward)
	desc bool
	cur  item
}

// Iter returns an unpositioned iterator over the snapshot: call SeekGE,
// SeekLT or Last first.
func (s *Snapshot) Iter() *Iter {
	it := &Iter{its: make([]btree.IterG[item], len(s.shards))}
	for i, t := range s.shards {
		it.its[i] = t.Iter()
	}
	return it
}

// SeekGE positions the iterator at the first pair with a key >= key and
// makes Next go forward. It reports whether there is such a pair.
func (it *Iter) SeekGE(key string) bool {
	it.desc, it.heap = false, it.heap[:0]
	pr := probe(key)
	for i := range it.its {
		if it.its[i].Seek(pr) {
			it.heap = append(it.heap, i)
		}
	}
	unprobe(pr)
	return it.init()
}

// SeekLT positions the iterator at the last pair with a key < key and
// makes Next go backward. It reports whether there is such a pair.
func (it *Iter) SeekLT(key string) bool {
	it.desc, it.heap = true, it.heap[:0]
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
		if ok {
			it.heap = append(it.heap, i)
		}
	}
	unprobe(pr)
	return it.init()
}

// Last positions the iterator at the last pair and makes Next go backward.
func (it *Iter) Last() bool {
	it.desc, it.heap = true, it.heap[:0]
	for i := range it.its {
		if it.its[i].Last() {
			it.heap = append(it.heap, i)
		}
	}
	return it.init()
}

// init orders the heap and loads the current pair.
func (it *Iter) init() bool {
	for i := len(it.heap)/2 - 1; i >= 0; i-- {
		it.down(i)
	}
	return it.load()
}

func (it *Iter) load() bool {
	if len(it.heap) == 0 {
		it.cur = item{}
		return false
	}
	it.cur = it.its[it.heap[0]].Item()
	return true
}

// Next moves to the next pair in the direction of the last seek and
// reports whether there is one.
func (it *Iter) Next() bool {
	if len(it.heap) == 0 {
		return false
	}
	top := it.heap[0]
	var ok bool
	if it.desc {
		ok = it.its[top].Prev()
	} else {
		ok = it.its[top].Next()
	}
	if !ok {
		last := len(it.heap) - 1
		it.heap[0] = it.heap[last]
		it.heap = it.heap[:last]
	}
	it.down(0)
	return it.load()
}

// Key returns the current key.
func (it *Iter) Key() string { return it.cur.p.key }

// Value returns the current value; it must not be modified.
func (it *Iter) Value() []byte { return it.cur.p.val }

// Release frees the shard iterators.
func (it *Iter) Release() {
	for i := range it.its {
		it.its[i].Release()
	}
	it.heap = nil
}

// before reports whether heap entry a comes before b in the walk's order.
func (it *Iter) before(a, b int) bool {
	ka, kb := it.its[it.heap[a]].Item().p.key, it.its[it.heap[b]].Item().p.key
	if it.desc {
		return ka > kb
	}
	return ka < kb
}

func (it *Iter) down(i int) {
	n := len(it.heap)
	for {
		l, first := 2*i+1, i
		if l < n && it.before(l, first) {
			first = l
		}
		if r := l + 1; r < n && it.before(r, first) {
			first = r
		}
		if first == i {
			return
		}
		it.heap[i], it.heap[first] = it.heap[first], it.heap[i]
		i = first
	}
}
