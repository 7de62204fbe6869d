package table

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/kvtool/kvtool/format"
)

// Blocks are compressed off the writer's goroutine: zstd is the slowest
// step of writing a table, and a machine usually has a core to spare. A
// cut block goes to a goroutine of its own; the writer keeps filling the
// next block and writes finished blocks strictly in order, waiting for the
// oldest when too many are in flight. Memory is a few blocks (raw and
// compressed) instead of one.

// pendingBlock is one block from the moment it is cut until its frame is
// written.
type pendingBlock struct {
	bw          *format.BlockWriter
	first, last []byte // copies of its first and last keys
	count       uint32
	frame       []byte        // the finished FrameBlock frame
	done        chan struct{} // closed when frame is ready (nil when compressed inline)
}

// parallelism returns how many blocks may compress at once: none for
// uncompressed blocks (Finish is a copy), a single core, or a writer asked
// to stay on one goroutine (limit 1).
func parallelism(codec format.BlockCodec, limit int) int {
	if codec == format.CodecNone || runtime.GOMAXPROCS(0) < 2 || limit == 1 {
		return 0
	}
	if limit > 1 {
		return limit
	}
	return runtime.GOMAXPROCS(0) + 1
}

func (w *Writer) newBlock() *pendingBlock {
	if n := len(w.free); n > 0 {
		p := w.free[n-1]
		w.free = w.free[:n-1]
		return p
	}
	return &pendingBlock{bw: format.NewBlockWriter(w.opts.Codec)}
}

// cutBlock ends the current block, starts compressing it and writes the
// blocks that are finished beyond the allowed number in flight.
func (w *Writer) cutBlock() error {
	if err := w.pace(w.cur.bw.Size()); err != nil {
		return err
	}
	p := w.cur
	p.first = append(p.first[:0], p.bw.FirstKey()...)
	p.last = append(p.last[:0], p.bw.LastKey()...)
	p.count = uint32(p.bw.Len())
	w.last = append(w.last[:0], p.last...)
	if w.par == 0 {
		p.done = nil
		p.finish()
	} else {
		p.done = make(chan struct{})
		go func() {
			p.finish()
			close(p.done)
		}()
	}
	w.queue = append(w.queue, p)
	w.cur = w.newBlock()
	return w.drain(w.par)
}

// finish builds the block's frame. It touches only p.
func (p *pendingBlock) finish() {
	frame, start := format.BeginFrame(p.frame[:0], format.FrameBlock)
	frame = p.bw.Finish(frame)
	format.FinishFrame(frame, start)
	p.frame = frame
}

// drain writes the oldest queued blocks, in order, until at most keep are
// left.
func (w *Writer) drain(keep int) error {
	for len(w.queue) > keep {
		p := w.queue[0]
		if p.done != nil {
			<-p.done
		}
		w.queue = w.queue[1:]
		w.index.add(p.first, p.last, w.off, uint32(len(p.frame)), p.count)
		w.nblock++
		if err := w.write(p.frame); err != nil {
			return err
		}
		p.bw.Reset()
		w.free = append(w.free, p)
	}
	return nil
}

// wait waits for every block still compressing, so no goroutine outlives
// a failed or cancelled writer.
func (w *Writer) wait() {
	for _, p := range w.queue {
		if p.done != nil {
			<-p.done
		}
	}
	w.queue = nil
}

// pace sleeps as needed to keep the entry bytes written within
// opts.BytesPerSec, counting n more, and the time worked within
// opts.BusyShare of the time since the first block. It fails, stickily,
// once opts.Context is done, before or during the pause.
func (w *Writer) pace(n int) error {
	ctx := w.opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if err := w.stop(ctx.Err()); err != nil || (w.opts.BytesPerSec <= 0 && w.opts.BusyShare <= 0) {
		return err
	}
	now := time.Now()
	if w.paceStart.IsZero() {
		w.paceStart, w.resumed = now, now
	}
	w.paced += int64(n)
	w.busy += now.Sub(w.resumed)
	ahead := w.due() - now.Sub(w.paceStart)
	defer func() { w.resumed = time.Now() }()
	if ahead <= 0 {
		return nil
	}
	t := time.NewTimer(ahead)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return w.stop(ctx.Err())
	}
	return nil
}

// due returns how long after the first block the writer may go on: the
// later of what opts.BytesPerSec allows for the bytes so far and what
// opts.BusyShare allows for the time worked so far.
func (w *Writer) due() time.Duration {
	var d time.Duration
	if r := w.opts.BytesPerSec; r > 0 {
		d = time.Duration(float64(w.paced) / float64(r) * float64(time.Second))
	}
	if sh := w.opts.BusyShare; sh > 0 && sh < 1 {
		d = max(d, time.Duration(float64(w.busy)/sh))
	}
	return d
}

// stop makes err, a context's error, the writer's sticky error.
func (w *Writer) stop(err error) error {
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("kvtool/table: writing %s: stopped: %w", w.path, err)
	}
	if err != nil {
		return w.err
	}
	return nil
}
