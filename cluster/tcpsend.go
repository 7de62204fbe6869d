package cluster

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The sending side of a peer link. Send writes a peer's messages itself
// when the link is up and idle: it encodes them, all of one Send in one
// buffer, and hands that to the kernel in one non-blocking write, so a
// message costs no hand-off to another goroutine and the messages of one
// Send cost one syscall (issue 11 "Speed": on two cores the sender
// goroutine's wake-up sat on every hop of a forwarded put). What the
// socket does not take at once, and every message that finds the link
// busy, down or with messages queued before it, goes to the peer's
// goroutine, which dials, authenticates and writes with a deadline:
//
//   - wmu guards the link (its connection, MAC sequence and unwritten
//     bytes). Send only ever tries it (TryLock), so it never waits for a
//     write; the goroutine holds it while it writes, blocking.
//   - Send's own write is non-blocking (a raw write that stops at
//     EAGAIN); the rest of its bytes stay in the link for the goroutine.
//     The link holds at most the queue's bound in bytes (and one
//     message) beyond the queue; what a Send has beyond that is dropped.
//   - The queue keeps its bounds (messages and bytes); a message that
//     finds it full is dropped and the peer reported unreachable.
//
// A link over TLS has no raw connection: its messages always go through
// the goroutine, as before.

// peerSender owns the link to one peer: its queue, its connection, and
// the goroutine that dials, authenticates and writes what Send could not.
type peerSender struct {
	t           *TCPTransport
	ctx         context.Context // ends when the transport closes or the peer is removed
	cancel      context.CancelFunc
	id          uint64
	addr        string
	q           chan *pb.Message
	queued      atomic.Int64 // bytes in q
	sent        atomic.Int64
	dropped     atomic.Int64
	unreachable chan struct{} // capacity 1: report the peer unreachable
	kick        chan struct{} // capacity 1: the goroutine has messages or bytes to write

	// wmu is held by whoever writes to link; Send only tries it.
	wmu  sync.Mutex
	link *peerLink // the connection while it is up, else nil; under wmu

	mu        sync.Mutex
	connected bool
	lastErr   string
}

func newPeerSender(t *TCPTransport, id uint64, addr string) *peerSender {
	ctx, cancel := context.WithCancel(t.ctx)
	return &peerSender{t: t, ctx: ctx, cancel: cancel, id: id, addr: addr,
		q: make(chan *pb.Message, t.cfg.QueueMessages), unreachable: make(chan struct{}, 1), kick: make(chan struct{}, 1)}
}

// send sends msgs, all to this peer, in their order: written at once if
// the link is up, idle and has nothing queued, else queued for the
// goroutine. It never blocks.
func (p *peerSender) send(msgs []*pb.Message) {
	if len(p.q) == 0 && p.wmu.TryLock() {
		done := p.writeNow(msgs)
		p.wmu.Unlock()
		if done {
			return
		}
	}
	for _, m := range msgs {
		p.enqueue(m)
	}
	p.poke()
}

// writeNow, under wmu, encodes msgs into the link and writes them without
// blocking, leaving what the socket does not take to the goroutine. It
// reports false, having done nothing, when the link is down, failed,
// over TLS, or has bytes or queued messages that must go first.
func (p *peerSender) writeNow(msgs []*pb.Message) bool {
	l := p.link
	if l == nil || l.raw == nil || l.err != nil || l.pending() > 0 || len(p.q) > 0 {
		return false
	}
	for i, m := range msgs {
		if int64(len(l.out)) >= p.t.cfg.QueueBytes {
			// The link holds what the queue could: the rest is
			// dropped as a full queue drops it (raft catching up a
			// peer can put hundreds of appends in one Ready).
			for range msgs[i:] {
				p.drop()
			}
			break
		}
		if err := l.appendMsg(m); err != nil {
			l.err = fmt.Errorf("marshal message to %x: %w", p.id, err)
			p.poke()
			return true
		}
		p.sent.Add(1)
	}
	if l.writeNonblock(); l.pending() > 0 || l.err != nil {
		p.poke()
	}
	return true
}

func (p *peerSender) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *peerSender) enqueue(m *pb.Message) {
	size := int64(proto.Size(m))
	if p.queued.Add(size) > p.t.cfg.QueueBytes {
		p.queued.Add(-size)
		p.drop()
		return
	}
	select {
	case p.q <- m:
	default:
		p.queued.Add(-size)
		p.drop()
	}
}

func (p *peerSender) drop() {
	p.dropped.Add(1)
	p.signalUnreachable()
}

func (p *peerSender) signalUnreachable() {
	select {
	case p.unreachable <- struct{}{}:
	default:
	}
}

// report tells the handler about unreachability, off the Send path.
func (p *peerSender) report() {
	defer p.t.wg.Done()
	for {
		select {
		case <-p.unreachable:
			if h := p.t.handler.Load(); h != nil {
				(*h).Unreachable(p.id)
			}
		case <-p.ctx.Done():
			return
		}
	}
}

// run dials the peer and streams its queue to it, redialing with backoff
// after any failure, until the transport closes.
func (p *peerSender) run() {
	defer p.t.wg.Done()
	backoff := 10 * time.Millisecond
	for p.ctx.Err() == nil {
		conn, key, err := p.dial()
		if err == nil {
			backoff = 10 * time.Millisecond
			err = p.stream(conn, key)
			conn.Close()
		}
		p.setState(false, err)
		if p.ctx.Err() != nil {
			return
		}
		p.signalUnreachable()
		select {
		case <-time.After(backoff):
		case <-p.ctx.Done():
			return
		}
		backoff = min(2*backoff, p.t.cfg.RedialMax)
	}
}

func (p *peerSender) dial() (net.Conn, []byte, error) {
	conn, key, err := p.dialKind(p.ctx, kindRaft)
	if err != nil {
		return nil, nil, err
	}
	p.setState(true, nil)
	return conn, key, nil
}

// dialKind connects to the peer and runs the handshake for a stream of
// kind (the raft stream dials through dial, which also tracks the link).
func (p *peerSender) dialKind(ctx context.Context, kind byte) (net.Conn, []byte, error) {
	d := net.Dialer{Timeout: p.t.cfg.HandshakeTimeout}
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dial member %x at %s: %w", p.id, p.addr, err)
	}
	deadline := time.Now().Add(p.t.cfg.HandshakeTimeout)
	if p.t.cfg.TLS != nil {
		tc := tls.Client(conn, clientTLS(p.t.cfg.TLS, p.addr))
		tc.SetDeadline(deadline)
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("member %x at %s: %w: TLS: %w", p.id, p.addr, ErrHandshake, err)
		}
		tc.SetDeadline(time.Time{})
		conn = tc
	}
	h := hello{kind: kind, clusterID: p.t.cfg.ClusterID, from: p.t.cfg.ID, to: p.id}
	key, err := dialHandshake(conn, p.t.cfg.Secret, h, deadline)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("member %x at %s: %w", p.id, p.addr, err)
	}
	return conn, key, nil
}

// stream sends the info frame on conn, then publishes the link to Send
// and writes what Send leaves it, until an error or Close. A message
// taken from the queue or left by Send and lost with the connection is
// simply lost: raft retransmits.
func (p *peerSender) stream(conn net.Conn, key []byte) error {
	closed := make(chan struct{})
	defer close(closed)
	go func() { // unblock a write stuck on a dead peer at Close
		select {
		case <-p.ctx.Done():
			conn.Close()
		case <-closed:
		}
	}()
	l := newPeerLink(conn, key)
	l.appendFrame(encodeInfo(PeerInfo{Name: p.t.cfg.Name, APIAddr: p.t.cfg.APIAddr}))
	if err := l.writeBlocking(p.t.cfg.WriteTimeout); err != nil {
		return fmt.Errorf("write to member %x at %s: %w", p.id, p.addr, err)
	}
	p.wmu.Lock()
	p.link = l
	p.wmu.Unlock()
	defer func() {
		p.wmu.Lock()
		p.link = nil
		p.wmu.Unlock()
	}()
	for {
		// First what was queued while the link was down: the poke that
		// queued it may have been taken by the link that failed.
		if err := p.drain(l); err != nil {
			return fmt.Errorf("write to member %x at %s: %w", p.id, p.addr, err)
		}
		select {
		case <-p.kick:
		case <-p.ctx.Done():
			return nil
		}
	}
}

// drainChunk is how many bytes of queued messages the goroutine encodes
// before it writes them.
const drainChunk = 64 << 10

// drain writes, holding wmu, what Send left in the link and every queued
// message, blocking for at most the write timeout per write.
func (p *peerSender) drain(l *peerLink) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	for {
		if l.err != nil {
			return l.err
		}
		for l.pending() < drainChunk {
			m := p.next()
			if m == nil {
				break
			}
			p.queued.Add(-int64(proto.Size(m)))
			if err := l.appendMsg(m); err != nil {
				return fmt.Errorf("marshal message to %x: %w", p.id, err)
			}
			p.sent.Add(1)
		}
		if l.pending() == 0 {
			return nil
		}
		if err := l.writeBlocking(p.t.cfg.WriteTimeout); err != nil {
			return err
		}
	}
}

// next takes another queued message without waiting, or nil.
func (p *peerSender) next() *pb.Message {
	select {
	case m := <-p.q:
		return m
	default:
		return nil
	}
}

func (p *peerSender) setState(connected bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connected = connected
	if err != nil {
		p.lastErr = err.Error()
	} else if connected {
		p.lastErr = ""
	}
}

func (p *peerSender) status() PeerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PeerStatus{Addr: p.addr, Connected: p.connected, Queued: len(p.q), Sent: p.sent.Load(), Dropped: p.dropped.Load(), LastError: p.lastErr}
}

// peerLink is one authenticated connection to a peer: the frames encoded
// and not yet written (out[off:]) and the MAC sequence they were encoded
// in. Its owner holds peerSender.wmu.
type peerLink struct {
	conn  net.Conn
	raw   syscall.RawConn // for non-blocking writes; nil over TLS
	mac   *macer
	out   []byte
	off   int
	err   error                 // sticky: the link failed
	write func(fd uintptr) bool // writes out[off:] without blocking (made once: no allocation per write)
}

// maxKeptOut is the largest write buffer a link keeps once written.
const maxKeptOut = 1 << 20

func newPeerLink(conn net.Conn, key []byte) *peerLink {
	l := &peerLink{conn: conn, mac: newMacer(key)}
	if tc, ok := conn.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil && rawWriteSupported {
			l.raw = raw
			l.write = func(fd uintptr) bool {
				l.writeFD(fd)
				return true // never wait for the socket: the goroutine does
			}
		}
	}
	return l
}

func (l *peerLink) pending() int { return len(l.out) - l.off }

// appendFrame appends one authenticated frame of payload.
func (l *peerLink) appendFrame(payload []byte) {
	l.out = appendFrame(l.out, l.mac, payload)
}

// appendMsg marshals m straight into a frame at the end of out.
func (l *peerLink) appendMsg(m *pb.Message) error {
	start := len(l.out)
	b, err := (proto.MarshalOptions{}).MarshalAppend(append(l.out, 0, 0, 0, 0), m)
	if err != nil {
		l.out = l.out[:start]
		return err
	}
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	l.out = append(b, l.mac.sum(b[start:start+4], b[start+4:])...)
	return nil
}

// writeNonblock writes what the socket takes now of out[off:].
func (l *peerLink) writeNonblock() {
	if err := l.raw.Write(l.write); err != nil && l.err == nil {
		l.err = err
	}
	l.compact()
}

// writeFD is the raw write: it stops at EAGAIN (or an error, which is
// kept in l.err).
func (l *peerLink) writeFD(fd uintptr) {
	for l.pending() > 0 {
		n, err := rawWrite(fd, l.out[l.off:])
		if n > 0 {
			l.off += n
		}
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			return
		case err != nil:
			l.err = err
			return
		}
	}
}

// writeBlocking writes out[off:] whole, waiting at most timeout.
func (l *peerLink) writeBlocking(timeout time.Duration) error {
	l.conn.SetWriteDeadline(time.Now().Add(timeout))
	n, err := l.conn.Write(l.out[l.off:])
	l.off += n
	// A raw write refuses to start past an expired deadline.
	l.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		l.err = err
		return err
	}
	l.compact()
	return nil
}

// compact empties out once it is all written, keeping a buffer of
// bounded size.
func (l *peerLink) compact() {
	if l.pending() > 0 {
		return
	}
	l.off = 0
	if cap(l.out) > maxKeptOut {
		l.out = nil
	} else {
		l.out = l.out[:0]
	}
}
