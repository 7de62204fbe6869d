package transfer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Defaults of ServeOptions.
const (
	DefaultMaxSessions    = 8
	DefaultMaxPending     = 64
	DefaultServeHandshake = 5 * time.Second
	serveAcceptRetryPause = 50 * time.Millisecond
)

// ErrBusy is returned (wrapped) by a Send that Serve refused because every
// session slot is taken; the receiver sees it as the sender giving up, and
// may try again later.
var ErrBusy = errors.New("kvtool/transfer: the source is busy: every transfer session is taken; try again later")

// ServeOptions configure Serve.
type ServeOptions struct {
	// MaxSessions bounds the sessions running at once. A connection counts
	// only once its peer proved the secret; one that proves it when every
	// slot is taken is told the source is busy (ErrBusy). Default
	// DefaultMaxSessions.
	MaxSessions int
	// MaxPending bounds the connections still in their handshake. A new
	// connection beyond it drops the oldest one, so idle connections
	// cannot keep a peer that answers at once from being heard. Default
	// DefaultMaxPending.
	MaxPending int
	// HandshakeTimeout bounds each handshake (SendOptions.HandshakeTimeout);
	// default DefaultServeHandshake.
	HandshakeTimeout time.Duration
	// Done, if set, is called (on the session's goroutine) as each session
	// ends.
	Done func(peer string, res SendResult, err error)
}

func (o *ServeOptions) fill() {
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultServeHandshake
	}
}

// Serve accepts connections on ln and runs Send from src on each (opts,
// with Peer set to the remote address), until ctx ends or ln fails. It
// bounds the connections in their handshake and the authenticated
// sessions separately (ServeOptions). It closes ln, and returns once every
// session ended: nil after ctx ended, else the accept error.
func Serve(ctx context.Context, ln net.Listener, src Source, opts SendOptions, so ServeOptions) error {
	so.fill()
	opts.HandshakeTimeout = so.HandshakeTimeout
	srv := &server{src: src, opts: opts, so: so, slots: make(chan struct{}, so.MaxSessions)}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer srv.wg.Wait()
	defer ln.Close()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() { // e.g. out of file descriptors for a moment
				time.Sleep(serveAcceptRetryPause)
				continue
			}
			return fmt.Errorf("kvtool/transfer: accept on %s: %w", ln.Addr(), err)
		}
		srv.start(ctx, conn)
	}
}

// server is Serve's state: the sessions running, the connections still in
// their handshake (oldest first), and the session slots.
type server struct {
	src   Source
	opts  SendOptions
	so    ServeOptions
	slots chan struct{}
	wg    sync.WaitGroup

	mu      sync.Mutex
	pending []*pendingConn
}

// pendingConn is a connection that has not proved the secret yet.
type pendingConn struct {
	conn net.Conn
	once sync.Once
}

func (srv *server) start(ctx context.Context, conn net.Conn) {
	pc := &pendingConn{conn: conn}
	srv.addPending(pc)
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		defer conn.Close()
		o := srv.opts
		o.Peer = conn.RemoteAddr().String()
		o.admit = func() (func(), error) {
			srv.donePending(pc)
			select {
			case srv.slots <- struct{}{}:
				return func() { <-srv.slots }, nil
			default:
				return nil, fmt.Errorf("%w (%d sessions running)", ErrBusy, cap(srv.slots))
			}
		}
		res, err := Send(ctx, conn, srv.src, o)
		srv.donePending(pc)
		if srv.so.Done != nil {
			srv.so.Done(o.Peer, res, err)
		}
	}()
}

// addPending records a connection in its handshake, dropping the oldest
// one if there are too many.
func (srv *server) addPending(pc *pendingConn) {
	srv.mu.Lock()
	var drop *pendingConn
	if len(srv.pending) >= srv.so.MaxPending {
		drop = srv.pending[0]
		srv.pending = srv.pending[1:]
	}
	srv.pending = append(srv.pending, pc)
	srv.mu.Unlock()
	if drop != nil {
		drop.conn.Close() // its Send ends with ErrPeerGone
	}
}

// donePending forgets a connection whose handshake ended (once).
func (srv *server) donePending(pc *pendingConn) {
	pc.once.Do(func() {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for i, p := range srv.pending {
			if p == pc {
				srv.pending = append(srv.pending[:i], srv.pending[i+1:]...)
				return
			}
		}
	})
}
