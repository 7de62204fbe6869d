package query

import (
	"context"
	"sync"

	"github.com/kvtool/kvtool/vfs"
)

// Reset makes the session read src from now on, as a session opened over
// it would: what it knew of the old source (the kv state, kv_at states) is
// dropped, its prepared statements are kept. Every Rows of the session
// must be closed.
//
// Opening a session creates its tables, which costs about a millisecond,
// a hundred point lookups; a server answering many queries resets a few
// sessions (Pool) instead.
func (s *Session) Reset(src Source) error {
	if s.conn == nil {
		return errClosed
	}
	if len(s.open) > 0 {
		return errRowsOpen
	}
	s.setSource(src)
	return nil
}

// setSource makes the session read src, knowing nothing of it yet.
func (s *Session) setSource(src Source) {
	if src.FS == nil {
		src.FS = vfs.Default
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.src, s.live, s.liveAt, s.denied, s.tableErr = src, nil, 0, "", nil
	clear(s.states)
	if src.Snapshot != nil {
		s.live, s.liveAt = snapState{src.Snapshot}, src.Snapshot.Index()
	}
	background := context.Background()
	s.ctx.Store(&background)
}

// Pool keeps idle sessions for reuse, each reset to the source of the
// query it serves. It is safe for concurrent use.
type Pool struct {
	opts Options
	max  int
	mu   sync.Mutex
	idle []*Session
}

// NewPool returns a pool keeping at most max idle sessions opened with
// opts.
func NewPool(max int, opts Options) *Pool { return &Pool{opts: opts, max: max} }

// Get returns a session over src: an idle one reset to it, or a new one.
// Give it back with Put when its rows are closed.
func (p *Pool) Get(ctx context.Context, src Source) (*Session, error) {
	p.mu.Lock()
	var s *Session
	if n := len(p.idle); n > 0 {
		s, p.idle = p.idle[n-1], p.idle[:n-1]
	}
	p.mu.Unlock()
	if s != nil {
		if err := s.Reset(src); err == nil {
			return s, nil
		}
		s.Close()
	}
	return Open(ctx, src, p.opts)
}

// Put gives a session back. It forgets its source (so an idle session
// holds no snapshot), and it is closed instead when the pool is full or
// the session still has rows open.
func (p *Pool) Put(s *Session) {
	if s.Reset(Source{}) != nil {
		s.Close()
		return
	}
	p.mu.Lock()
	if len(p.idle) < p.max {
		p.idle, s = append(p.idle, s), nil
	}
	p.mu.Unlock()
	if s != nil {
		s.Close()
	}
}
