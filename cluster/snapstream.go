package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// The TCP transport's snapshot streams (kind kindSnap, see tcpwire.go):
// a leader dials the member, proves the secret as for raft messages, and
// names the raft term it sends in; the member refuses a stale term before
// a byte of the snapshot moves, then the connection is transfer/'s.

// maxVerdict bounds the acceptor's answer frame.
const maxVerdict = 1 + maxRefusal

// HandleStreams implements Streams.
func (t *TCPTransport) HandleStreams(h StreamHandler) { t.streams.Store(&h) }

// OpenStream implements Streams: it dials member to's peer listener for a
// snapshot stream of term, and returns the connection once the member
// accepted it. The caller closes it; Close of the transport also does.
func (t *TCPTransport) OpenStream(ctx context.Context, to, term uint64) (net.Conn, error) {
	p := (*t.peers.Load())[to]
	if p == nil {
		return nil, fmt.Errorf("%w: %x is not a peer of member %x", ErrUnknownMember, to, t.cfg.ID)
	}
	conn, key, err := p.dialKind(ctx, kindSnap)
	if err != nil {
		return nil, err
	}
	if !t.track(conn) {
		conn.Close()
		return nil, fmt.Errorf("kvtool/cluster: the transport of member %x is closed", t.cfg.ID)
	}
	if err := t.openStream(conn, key, to, term); err != nil {
		t.untrack(conn)
		return nil, err
	}
	return &trackedConn{Conn: conn, t: t}, nil
}

// openStream sends the term and reads the member's verdict.
func (t *TCPTransport) openStream(conn net.Conn, key []byte, to, term uint64) error {
	conn.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	defer conn.SetDeadline(time.Time{})
	if err := writeFrameDirect(conn, newMacer(key), binary.LittleEndian.AppendUint64(nil, term)); err != nil {
		return fmt.Errorf("kvtool/cluster: snapshot stream to member %x: %w", to, err)
	}
	back := newMacer(key)
	back.seq = reverseSeq
	v, err := readFrameDirect(conn, back, maxVerdict)
	switch {
	case err != nil:
		return fmt.Errorf("kvtool/cluster: snapshot stream to member %x: no answer: %w", to, err)
	case len(v) == 0:
		return fmt.Errorf("%w: empty answer to a snapshot stream from member %x", ErrFrame, to)
	case v[0] != 0:
		return fmt.Errorf("kvtool/cluster: member %x refused the snapshot stream: %s", to, v[1:])
	}
	return nil
}

// serveStream runs the acceptor's side of a snapshot stream on conn (its
// handshake done): it reads the term, asks the handler, answers, and hands
// the connection over. serve untracks and closes conn after.
func (t *TCPTransport) serveStream(conn net.Conn, from uint64, key []byte, deadline time.Time) {
	conn.SetDeadline(deadline)
	b, err := readFrameDirect(conn, newMacer(key), 8)
	if err == nil && len(b) != 8 {
		err = fmt.Errorf("%w: snapshot stream header of %d bytes, want 8", ErrFrame, len(b))
	}
	if err != nil {
		t.reject(fmt.Errorf("member %x at %s: %w", from, conn.RemoteAddr(), err))
		return
	}
	term := binary.LittleEndian.Uint64(b)
	h := t.streams.Load()
	verr := errors.New("this member takes no snapshots")
	if h != nil {
		verr = (*h).AcceptStream(from, term)
	}
	back := newMacer(key)
	back.seq = reverseSeq
	verdict := []byte{0}
	if verr != nil {
		msg := verr.Error()
		if len(msg) > maxRefusal {
			msg = msg[:maxRefusal]
		}
		verdict = append([]byte{1}, msg...)
		t.reject(fmt.Errorf("member %x at %s: snapshot stream refused: %w", from, conn.RemoteAddr(), verr))
	}
	werr := writeFrameDirect(conn, back, verdict)
	conn.SetDeadline(time.Time{})
	if verr != nil {
		return
	}
	if werr != nil {
		conn.Close() // still served: the handler counts every stream it accepted
	}
	(*h).ServeStream(from, term, conn)
}

// trackedConn is a dialed snapshot stream the transport closes at Close;
// its Close forgets it.
type trackedConn struct {
	net.Conn
	t *TCPTransport
}

func (c *trackedConn) Close() error {
	c.t.untrack(c.Conn)
	return nil
}
