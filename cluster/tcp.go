package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvtool/kvtool/format"
)

// TCPConfig configures a TCPTransport.
type TCPConfig struct {
	ID        uint64
	ClusterID uint64
	// Listener is this member's one peer listener (--peer-listen); the
	// transport accepts on it and closes it.
	Listener net.Listener
	Peers    map[uint64]string // every other member's peer address, by ID
	Secret   []byte            // the shared secret, at least MinSecretSize bytes; never sent
	// Name and APIAddr are this member's name and the address of its HTTP
	// API, told to each peer in the first frame of every connection, so
	// that `kvtool cluster status` can list every member's API.
	Name    string
	APIAddr string
	// TLS, if set, wraps every peer connection in mutual TLS (1.3 at
	// least): each side presents Certificates, and verifies the other's
	// against RootCAs (ClientCAs, if set, for the certificates of dialing
	// peers). A dialer checks the peer's certificate for ServerName, or
	// the host of the peer's address when ServerName is empty. The shared
	// secret's handshake and frame authentication still run inside it.
	TLS *tls.Config

	QueueMessages    int           // bound of each peer's queue in messages; default 4096
	QueueBytes       int64         // bound of each peer's queue in bytes; default 64 MiB
	MaxFrame         int           // largest frame accepted; default format.MaxFrameSize
	HandshakeTimeout time.Duration // default 5s
	WriteTimeout     time.Duration // a peer that takes longer to accept a batch is dropped; default 5s
	RedialMax        time.Duration // longest wait between dials to a down peer; default 2s
}

func (c *TCPConfig) setDefaults() {
	if c.QueueMessages <= 0 {
		c.QueueMessages = 4096
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 64 << 20
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = format.MaxFrameSize
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.RedialMax <= 0 {
		c.RedialMax = 2 * time.Second
	}
}

// TCPTransport is the peer transport over TCP: one listener per member,
// one outgoing connection per peer carrying raft messages, authenticated
// with the shared secret and fenced by cluster ID (see tcpwire.go). Send
// writes to an idle link itself, without blocking; each peer has a
// bounded queue drained by its own goroutine for the rest (tcpsend.go),
// so a dead or slow peer costs the sender dropped messages, never a
// blocked Send.
type TCPTransport struct {
	cfg     TCPConfig
	handler atomic.Pointer[Handler]
	// peers is replaced whole (copy on write, under mu) when a peer is
	// added or removed (tcppeers.go); Send reads it without a lock.
	streams atomic.Pointer[StreamHandler] // takes snapshot streams (snapstream.go)
	peers   atomic.Pointer[map[uint64]*peerSender]
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // accepted connections, closed by Close
	info  map[uint64]PeerInfo   // what each peer said of itself when it last connected

	rejected atomic.Int64 // handshakes and frames refused
	lastRej  atomic.Pointer[string]
}

// NewTCPTransport starts accepting on cfg.Listener and dialing peers.
func NewTCPTransport(cfg TCPConfig) (*TCPTransport, error) {
	cfg.setDefaults()
	switch {
	case cfg.ID == 0 || cfg.ClusterID == 0:
		return nil, errors.New("kvtool/cluster: a TCP transport needs nonzero member and cluster IDs")
	case cfg.Listener == nil:
		return nil, errors.New("kvtool/cluster: a TCP transport needs a listener")
	case len(cfg.Secret) < MinSecretSize:
		return nil, fmt.Errorf("kvtool/cluster: the shared secret has %d bytes, at least %d are needed (KVTOOL_SECRET or --secret-file)", len(cfg.Secret), MinSecretSize)
	case len(cfg.Name) > maxInfoField || len(cfg.APIAddr) > maxInfoField:
		return nil, fmt.Errorf("kvtool/cluster: member name %q or API address %q is over %d bytes", cfg.Name, cfg.APIAddr, maxInfoField)
	case cfg.TLS != nil && len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil:
		return nil, errors.New("kvtool/cluster: peer TLS needs this member's certificate (mutual TLS: every member presents one)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &TCPTransport{cfg: cfg, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}, info: map[uint64]PeerInfo{}}
	t.peers.Store(&map[uint64]*peerSender{})
	for id, addr := range cfg.Peers {
		t.AddPeer(id, addr)
	}
	t.wg.Add(1)
	go t.accept()
	return t, nil
}

// Handle implements Transport.
func (t *TCPTransport) Handle(h Handler) { t.handler.Store(&h) }

// Send implements Transport: the messages to each peer, in their order,
// are written at once in one write when its link is idle, else queued
// (tcpsend.go); a message that finds the queue full is dropped and the
// peer reported unreachable.
func (t *TCPTransport) Send(msgs []*pb.Message) {
	if len(msgs) == 0 {
		return
	}
	peers := *t.peers.Load()
	if len(msgs) == 1 || allTo(msgs, msgs[0].GetTo()) {
		if p := peers[msgs[0].GetTo()]; p != nil {
			p.send(msgs)
		}
		return
	}
	var buf [16]*pb.Message
	for id, p := range peers {
		group := buf[:0]
		for _, m := range msgs {
			if m.GetTo() == id {
				group = append(group, m)
			}
		}
		if len(group) > 0 {
			p.send(group)
		}
	}
}

// allTo reports whether every message of msgs goes to id.
func allTo(msgs []*pb.Message, id uint64) bool {
	for _, m := range msgs {
		if m.GetTo() != id {
			return false
		}
	}
	return true
}

// Close stops accepting and dialing, closes every connection and waits for
// the transport's goroutines.
func (t *TCPTransport) Close() error {
	t.cancel()
	err := t.cfg.Listener.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Addr is the listener's address.
func (t *TCPTransport) Addr() net.Addr { return t.cfg.Listener.Addr() }

// PeerInfo is what a peer says of itself when it connects (in the first,
// authenticated frame).
type PeerInfo struct {
	Name    string
	APIAddr string
}

// PeerStatus describes the link to one peer.
type PeerStatus struct {
	Addr string
	PeerInfo
	Connected bool
	Queued    int
	Sent      int64
	Dropped   int64  // messages dropped because the queue was full or the link failed
	LastError string // the last dial, handshake or write error ("" if none since connecting)
}

// Peers returns the status of every peer link, and the count of incoming
// connections or frames refused with the last reason.
func (t *TCPTransport) Peers() (map[uint64]PeerStatus, int64, string) {
	out := map[uint64]PeerStatus{}
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, p := range *t.peers.Load() {
		ps := p.status()
		ps.PeerInfo = t.info[id]
		out[id] = ps
	}
	last := ""
	if s := t.lastRej.Load(); s != nil {
		last = *s
	}
	return out, t.rejected.Load(), last
}

func (t *TCPTransport) reject(err error) {
	t.rejected.Add(1)
	s := err.Error()
	t.lastRej.Store(&s)
}

// accept serves incoming connections until Close.
func (t *TCPTransport) accept() {
	defer t.wg.Done()
	for {
		conn, err := t.cfg.Listener.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // a transient accept error (out of descriptors)
			continue
		}
		if !t.track(conn) {
			conn.Close()
			return
		}
		t.wg.Add(1)
		go t.serve(conn)
	}
}

// track registers an accepted connection for Close; false once closing.
func (t *TCPTransport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *TCPTransport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.Close()
}

// serve authenticates one incoming connection and delivers its messages.
func (t *TCPTransport) serve(raw net.Conn) {
	defer t.wg.Done()
	defer t.untrack(raw)
	deadline := time.Now().Add(t.cfg.HandshakeTimeout)
	conn, err := t.acceptTLS(raw, deadline)
	if err != nil {
		t.reject(fmt.Errorf("from %s: %w", raw.RemoteAddr(), err))
		return
	}
	var kind byte
	check := func(h hello) error { kind = h.kind; return t.checkHello(h) }
	from, key, err := acceptHandshake(conn, t.cfg.Secret, check, deadline)
	if err != nil {
		t.reject(fmt.Errorf("from %s: %w", conn.RemoteAddr(), err))
		return
	}
	if kind == kindSnap {
		t.serveStream(conn, from, key, deadline) // snapstream.go
		return
	}
	fr := &frameReader{r: bufio.NewReaderSize(conn, 64<<10), mac: newMacer(key), maxLen: t.cfg.MaxFrame}
	if err := t.readInfo(fr, from, deadline, conn); err != nil {
		t.reject(fmt.Errorf("member %x at %s: %w", from, conn.RemoteAddr(), err))
		return
	}
	for {
		b, err := fr.next()
		if err != nil {
			if errors.Is(err, ErrFrame) {
				t.reject(fmt.Errorf("member %x at %s: %w", from, conn.RemoteAddr(), err))
			}
			return
		}
		if err := t.deliver(from, b); err != nil {
			t.reject(fmt.Errorf("member %x at %s: %w", from, conn.RemoteAddr(), err))
			return
		}
	}
}

// acceptTLS runs the server side of the TLS handshake on raw, if the
// transport uses TLS: the peer must present a certificate the CAs vouch
// for.
func (t *TCPTransport) acceptTLS(raw net.Conn, deadline time.Time) (net.Conn, error) {
	if t.cfg.TLS == nil {
		return raw, nil
	}
	tc := tls.Server(raw, serverTLS(t.cfg.TLS))
	raw.SetDeadline(deadline)
	defer raw.SetDeadline(time.Time{})
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("%w: TLS: %w (peers need a certificate of this cluster's CA)", ErrHandshake, err)
	}
	return tc, nil
}

// readInfo reads the dialer's first frame, what it says of itself, and
// records it.
func (t *TCPTransport) readInfo(fr *frameReader, from uint64, deadline time.Time, conn net.Conn) error {
	conn.SetReadDeadline(deadline)
	defer conn.SetReadDeadline(time.Time{})
	b, err := fr.next()
	if err != nil {
		return fmt.Errorf("%w: no member info after the handshake: %w", ErrHandshake, err)
	}
	info, err := decodeInfo(b)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.info[from] = info
	t.mu.Unlock()
	return nil
}

// serverTLS is the acceptor's TLS configuration: mutual, TLS 1.3.
func serverTLS(c *tls.Config) *tls.Config {
	s := c.Clone()
	s.ClientAuth = tls.RequireAndVerifyClientCert
	if s.ClientCAs == nil {
		s.ClientCAs = s.RootCAs
	}
	s.MinVersion = max(s.MinVersion, tls.VersionTLS13)
	return s
}

// clientTLS is the dialer's TLS configuration for the peer at addr.
func clientTLS(c *tls.Config, addr string) *tls.Config {
	s := c.Clone()
	if s.ServerName == "" {
		s.ServerName, _, _ = net.SplitHostPort(addr)
	}
	s.MinVersion = max(s.MinVersion, tls.VersionTLS13)
	return s
}

// checkHello accepts a dialer of this cluster, known as a peer, that means
// this member.
func (t *TCPTransport) checkHello(h hello) error {
	switch {
	case h.clusterID != t.cfg.ClusterID:
		return fmt.Errorf("%w: %w: member %x is in cluster %x, this is cluster %x", ErrHandshake, ErrClusterMismatch, h.from, h.clusterID, t.cfg.ClusterID)
	case h.to != t.cfg.ID:
		return fmt.Errorf("%w: member %x dialed member %x, this is member %x (check --cluster addresses)", ErrHandshake, h.from, h.to, t.cfg.ID)
	case (*t.peers.Load())[h.from] == nil:
		return fmt.Errorf("%w: member %x is not a peer of member %x", ErrHandshake, h.from, t.cfg.ID)
	}
	return nil
}

// deliver decodes one authenticated frame and steps it into the handler.
func (t *TCPTransport) deliver(from uint64, b []byte) error {
	m := &pb.Message{}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: not a raft message: %v", ErrFrame, err)
	}
	// A follower forwards a leadership transfer to the leader as raft made
	// it: From is the member to hand over to, not the sender.
	forwarded := m.GetType() == pb.MsgTransferLeader
	if !t.hasPeer(from) {
		return fmt.Errorf("%w: member %x is no longer a peer of member %x", ErrFrame, from, t.cfg.ID)
	}
	if (m.GetFrom() != from && !forwarded) || m.GetTo() != t.cfg.ID {
		return fmt.Errorf("%w: message from %x to %x on the link from %x to %x", ErrFrame, m.GetFrom(), m.GetTo(), from, t.cfg.ID)
	}
	if h := t.handler.Load(); h != nil {
		(*h).Receive(t.ctx, m)
	}
	return nil
}
