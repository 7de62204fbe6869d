package table

import (
	"runtime"
	"sync"

	"github.com/kvtool/kvtool/format"
)

// Blocks decodes every block of the table on up to workers goroutines
// (workers <= 0: GOMAXPROCS) and calls fn with each block in file order,
// from the calling goroutine: a whole-table load (recovery from a
// checkpoint) keeps the cores busy decompressing while fn consumes. Each
// Block is fresh and never decoded into again, so fn may keep it, and
// slices of its keys and values, for as long as it likes.
//
// A block that fails its checks (frame checksum, block encoding, or
// disagreeing with its index entry) ends the walk with the
// *format.CorruptionError naming the file and the block's offset, exactly
// as a serial read would: fn has been called for every block before it
// and for none after. An error from fn ends the walk and is returned.
// No goroutine outlives the call.
func (r *Reader) Blocks(workers int, fn func(b *format.Block) error) error {
	return MapBlocks(r, workers, func(b *format.Block) (*format.Block, error) { return b, nil }, fn)
}

// MapBlocks is Reader.Blocks with a step of work moved onto the decoding
// goroutines: mapFn turns each decoded block into a T there, in parallel
// and in no particular order, and fn receives the T's in file order from
// the calling goroutine. An error from mapFn ends the walk like damage to
// that block would.
func MapBlocks[T any](r *Reader, workers int, mapFn func(b *format.Block) (T, error), fn func(T) error) error {
	n := len(r.index)
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, n))
	if n == 0 {
		return nil
	}
	d := newBlockDecoder(r, n, workers, mapFn)
	defer d.stop()
	for i := 0; i < n; i++ {
		res := <-d.ring[i%len(d.ring)]
		d.tokens <- struct{}{} // block i+window may be decoded now
		if res.err != nil {
			return res.err
		}
		if err := fn(res.v); err != nil {
			return err
		}
	}
	return nil
}

// decodedBlock is one block's result.
type decodedBlock[T any] struct {
	v   T
	err error
}

// blockDecoder hands block numbers to workers in order, at most
// len(ring) ahead of the consumer, and the workers put each result in
// ring[i % len(ring)]: the window guarantees that slot is empty, so a
// worker never blocks on it.
type blockDecoder[T any] struct {
	r      *Reader
	mapFn  func(*format.Block) (T, error)
	work   chan int
	ring   []chan decodedBlock[T]
	tokens chan struct{} // one per free ring slot
	quit   chan struct{}
	wg     sync.WaitGroup
}

func newBlockDecoder[T any](r *Reader, n, workers int, mapFn func(*format.Block) (T, error)) *blockDecoder[T] {
	window := 2 * workers
	d := &blockDecoder[T]{
		r: r, mapFn: mapFn, work: make(chan int),
		ring:   make([]chan decodedBlock[T], window),
		tokens: make(chan struct{}, window),
		quit:   make(chan struct{}),
	}
	for i := range d.ring {
		d.ring[i] = make(chan decodedBlock[T], 1)
		d.tokens <- struct{}{}
	}
	d.wg.Add(1 + workers)
	go d.feed(n)
	for w := 0; w < workers; w++ {
		go d.decode()
	}
	return d
}

// feed dispatches 0..n-1, each once a ring slot is free.
func (d *blockDecoder[T]) feed(n int) {
	defer d.wg.Done()
	defer close(d.work)
	for i := 0; i < n; i++ {
		select {
		case <-d.tokens:
		case <-d.quit:
			return
		}
		select {
		case d.work <- i:
		case <-d.quit:
			return
		}
	}
}

// decode reads and decodes the blocks it is handed into fresh Blocks.
func (d *blockDecoder[T]) decode() {
	defer d.wg.Done()
	var raw []byte
	for i := range d.work {
		e := &d.r.index[i]
		if cap(raw) < int(e.length) {
			raw = make([]byte, e.length)
		}
		raw = raw[:e.length]
		blk := new(format.Block)
		err := readAt(d.r.f, d.r.path, raw, e.off, "block")
		if err == nil {
			err = decodeBlockFrame(raw, blk, d.r.path, e.off)
		}
		if err == nil {
			err = matchIndex(blk, e, d.r.path)
		}
		var v T
		if err == nil {
			v, err = d.mapFn(blk)
		}
		d.ring[i%len(d.ring)] <- decodedBlock[T]{v: v, err: err}
	}
}

// stop ends the feeder and waits for the workers; results not consumed
// are dropped.
func (d *blockDecoder[T]) stop() {
	close(d.quit)
	d.wg.Wait()
}
