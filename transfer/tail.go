package transfer

import (
	"context"
	"sync"

	"github.com/kvtool/kvtool/segment"
)

// tailQueue holds log entries read ahead of the connection, at most max
// bytes of them (but always at least one), so a slow receiver stalls the
// log reader instead of filling the sender's memory.
type tailQueue struct {
	mu    sync.Mutex
	items []segment.Entry
	bytes int
	max   int
	err   error         // why the reader stopped (io.EOF: the log ends)
	space chan struct{} // closed when an entry is taken, if full is set
	full  bool          // the reader waits on space
}

func newTailQueue(max int) *tailQueue {
	return &tailQueue{max: max, space: make(chan struct{})}
}

// push adds e, waiting while the queue is full.
func (q *tailQueue) push(ctx context.Context, e segment.Entry) error {
	for {
		q.mu.Lock()
		if q.bytes < q.max || len(q.items) == 0 {
			q.items = append(q.items, e)
			q.bytes += len(e.Data)
			q.mu.Unlock()
			return nil
		}
		space := q.space
		q.full = true
		q.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// peek returns the oldest entry without taking it; when the queue is empty
// it returns false, and the reader's error once it stopped.
func (q *tailQueue) peek() (segment.Entry, bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return segment.Entry{}, false, q.err
	}
	return q.items[0], true, nil
}

// pop takes the oldest entry.
func (q *tailQueue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bytes -= len(q.items[0].Data)
	q.items[0] = segment.Entry{}
	q.items = q.items[1:]
	if q.full { // a channel made and closed per entry only while the reader waits
		close(q.space)
		q.space, q.full = make(chan struct{}), false
	}
}

// finish records why the reader stopped.
func (q *tailQueue) finish(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.err = err
}

// tailLoop reads the source's log from the session's first tail entry into
// the queue until ctx ends or the log does.
func (s *sender) tailLoop(ctx context.Context) {
	defer close(s.tailStopped)
	defer s.signal()
	t, err := s.src.Tail(ctx, s.sess.TailFrom)
	if err != nil {
		s.tail.finish(err)
		return
	}
	defer t.Close()
	var copies slab
	for {
		e, err := t.Next(ctx)
		if err != nil {
			s.tail.finish(err)
			return
		}
		e.Data = copies.clone(e.Data) // the source may reuse its buffer
		if err := s.tail.push(ctx, e); err != nil {
			return
		}
		s.signal()
	}
}
