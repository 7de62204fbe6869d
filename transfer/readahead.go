package transfer

import (
	"sync"

	"github.com/kvtool/kvtool/format"
)

// inFrame is a frame read ahead: its type, stream offset, payload (a
// copy), and for a chunk its data.
type inFrame struct {
	t    format.FrameType
	off  int64
	p    []byte
	data []byte
	mac  []byte // for a final frame of a one-way stream: the MAC of all before it
	// forged marks a chunk of a duplex session whose data does not match
	// its authentication tag.
	forged bool
	err    error
}

// readAhead reads a stream's frames on a goroutine of its own, so the
// connection keeps draining while the receiver writes and fsyncs. It holds
// at most about budget bytes of frames not yet released (always at least
// one frame). The frameReader belongs to it until stop.
type readAhead struct {
	r       *frameReader
	conn    any
	maxWire uint32 // the session's chunk size: a chunk's data is at most this
	budget  int
	ch      chan inFrame
	quit    chan struct{}
	done    chan struct{}

	mu     sync.Mutex
	cond   *sync.Cond
	queued int
	free   [][]byte
	copies slab // the frames' payloads (run's goroutine only)
}

func startReadAhead(r *frameReader, conn any, chunkSize uint32, budget int) *readAhead {
	ra := &readAhead{r: r, conn: conn, maxWire: chunkSize, budget: budget,
		ch: make(chan inFrame, 64), quit: make(chan struct{}), done: make(chan struct{})}
	ra.cond = sync.NewCond(&ra.mu)
	go ra.run()
	return ra
}

func (ra *readAhead) run() {
	defer close(ra.done)
	for ra.waitBudget() {
		f := ra.read()
		ra.mu.Lock()
		ra.queued += len(f.p) + len(f.data)
		ra.mu.Unlock()
		select {
		case ra.ch <- f:
		case <-ra.quit:
			return
		}
		if f.err != nil {
			return
		}
	}
}

// read reads one frame, and a chunk's data after its header.
func (ra *readAhead) read() inFrame {
	fm, err := ra.r.next()
	if err != nil {
		return inFrame{err: err}
	}
	t, off := fm.Type, fm.Offset
	f := inFrame{t: t, off: off, p: ra.copies.clone(fm.Payload)}
	switch t {
	case format.FrameXferChunk:
		c, err := format.DecodeXferChunk(fm.Payload, ra.r.name, off)
		if err == nil && c.WireLen > ra.maxWire {
			err = format.Corruptf(ra.r.name, off, "chunk %d has %d wire bytes, more than the chunk size %d", c.Seq, c.WireLen, ra.maxWire)
		}
		if err == nil {
			var authentic bool
			f.data, authentic, err = ra.r.chunkDataInto(ra.buffer(int(c.WireLen)))
			f.forged = !authentic
		}
		f.err = err
	case format.FrameXferFinal:
		if ra.r.mac != nil {
			f.mac = ra.r.mac.Sum(nil)
		}
	}
	return f
}

// waitBudget waits until the frames queued are under the budget; false
// once stopped.
func (ra *readAhead) waitBudget() bool {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	for ra.queued >= ra.budget {
		select {
		case <-ra.quit:
			return false
		default:
		}
		ra.cond.Wait()
	}
	select {
	case <-ra.quit:
		return false
	default:
		return true
	}
}

// buffer returns a chunk buffer of n bytes, reusing a released one.
func (ra *readAhead) buffer(n int) []byte {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	for len(ra.free) > 0 {
		b := ra.free[len(ra.free)-1]
		ra.free = ra.free[:len(ra.free)-1]
		if cap(b) >= n {
			return b[:n]
		}
	}
	return make([]byte, n, max(n, int(ra.maxWire)))
}

// release gives a processed frame's bytes back to the budget (and its
// buffer back to the pool).
func (ra *readAhead) release(f inFrame) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	ra.queued -= len(f.p) + len(f.data)
	if f.data != nil && len(ra.free) < 8 {
		ra.free = append(ra.free, f.data[:0])
	}
	ra.cond.Signal()
}

// stop ends the goroutine and waits for it: it interrupts a blocked read
// (see interrupt: on a stream without deadlines this closes it). On a
// stream that can neither take a deadline nor be closed, the goroutine
// ends at the stream's next byte or end.
func (ra *readAhead) stop() {
	close(ra.quit)
	ra.mu.Lock()
	ra.cond.Broadcast()
	ra.mu.Unlock()
	select {
	case <-ra.done:
		return
	default:
	}
	undo, ok := interrupt(ra.conn)
	if !ok {
		return
	}
	<-ra.done
	undo()
}
