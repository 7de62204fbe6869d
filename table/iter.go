package table

import (
	"bytes"
	"sort"

	"github.com/kvtool/kvtool/format"
)

// Iter walks the entries of a key range in ascending order:
//
//	it := r.NewIter(start, end)
//	for it.Next() {
//		use(it.Key(), it.Value(), it.Kind())
//	}
//	if err := it.Close(); err != nil { ... }
//
// Key and Value are valid until the next call to Next. An Iter reads only
// the blocks that overlap its range, one at a time, and is owned by one
// goroutine.
type Iter struct {
	r          *Reader
	start, end []byte
	next, stop int // next block to load; blocks [next, stop) remain
	bb         blockBuf
	pos        int  // next entry of the loaded block
	started    bool // a block has been loaded
	key, value []byte
	kind       format.EntryKind
	err        error // sticky: the first read or corruption error
	done       bool
}

// NewIter returns an iterator over the entries with start <= key < end.
// A nil start means from the first key; a nil or empty end means to the
// last.
func (r *Reader) NewIter(start, end []byte) *Iter {
	it := &Iter{r: r, start: start, end: end, stop: len(r.index)}
	if start != nil {
		it.next = sort.Search(len(r.index), func(i int) bool { return bytes.Compare(r.index[i].last, start) >= 0 })
	}
	if len(end) > 0 {
		it.stop = sort.Search(len(r.index), func(i int) bool { return bytes.Compare(r.index[i].first, end) >= 0 })
	}
	return it
}

// Next moves to the next entry and reports whether there is one.
func (it *Iter) Next() bool {
	for !it.done && it.err == nil {
		if it.pos < it.bb.blk.Len() {
			return it.take()
		}
		it.loadNext()
	}
	it.key, it.value, it.kind = nil, nil, 0
	return false
}

// take makes the entry at pos current unless it is past the end.
func (it *Iter) take() bool {
	k, v, kind := it.bb.blk.Entry(it.pos)
	if len(it.end) > 0 && bytes.Compare(k, it.end) >= 0 {
		it.done = true
		it.key, it.value, it.kind = nil, nil, 0
		return false
	}
	it.pos++
	it.key, it.value, it.kind = k, v, kind
	return true
}

// loadNext loads the next block of the range, or ends the iteration.
func (it *Iter) loadNext() {
	if it.next >= it.stop {
		it.done = true
		return
	}
	if err := it.r.loadBlock(it.next, &it.bb); err != nil {
		it.err = err
		return
	}
	it.next++
	it.pos = 0
	if !it.started && it.start != nil {
		it.pos = it.bb.blk.SeekGE(it.start)
	}
	it.started = true
}

// Key returns the current key.
func (it *Iter) Key() []byte { return it.key }

// Value returns the current value (empty for a tombstone).
func (it *Iter) Value() []byte { return it.value }

// Kind returns the current entry's kind.
func (it *Iter) Kind() format.EntryKind { return it.kind }

// Err returns the error that ended the iteration, if any.
func (it *Iter) Err() error { return it.err }

// Close ends the iteration and returns Err. It does not close the Reader.
func (it *Iter) Close() error {
	it.done = true
	it.bb = blockBuf{}
	return it.err
}

// ForEach calls fn for every entry in key order — a put with its value, or
// a tombstone — until fn returns an error, which ForEach returns. The
// slices are valid only during the call.
func (r *Reader) ForEach(fn func(kind format.EntryKind, key, value []byte) error) error {
	it := r.NewIter(nil, nil)
	for it.Next() {
		if err := fn(it.Kind(), it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}
