package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

var testSecret = []byte("0123456789abcdef-test-secret")

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// tcpMembers gives each member of a test cluster a TCP transport on its
// own loopback port, kept across restarts.
func tcpMembers(t testing.TB, ids []uint64) func(uint64) (Transport, error) {
	addrs := map[uint64]string{}
	first := map[uint64]net.Listener{}
	for _, id := range ids {
		l := listen(t)
		addrs[id], first[id] = l.Addr().String(), l
	}
	var mu sync.Mutex
	return func(id uint64) (Transport, error) {
		mu.Lock()
		l := first[id]
		delete(first, id)
		mu.Unlock()
		if l == nil {
			var err error
			if l, err = net.Listen("tcp", addrs[id]); err != nil {
				return nil, err
			}
		}
		return NewTCPTransport(TCPConfig{ID: id, ClusterID: testClusterID, Listener: l, Peers: addrs, Secret: testSecret, RedialMax: 50 * time.Millisecond})
	}
}

func TestTCPCluster(t *testing.T) {
	ids := []uint64{1, 2, 3}
	c := newTestClusterWith(t, 3, 1, tcpMembers(t, ids))
	lead := c.leader()
	for _, id := range ids {
		if _, err := c.propose(id, Request{Txn: put(fmt.Sprint("k", id), "v")}); err != nil {
			t.Fatalf("propose on %d (leader %d): %v", id, lead, err)
		}
	}
	c.converged()
	// The leader goes away; the other two elect one and go on.
	c.stop(c.node(lead))
	other := lead%3 + 1
	if _, err := c.propose(other, Request{Txn: put("after", "v")}); err != nil {
		t.Fatal(err)
	}
	if err := c.restart(lead); err != nil {
		t.Fatal(err)
	}
	c.converged()
	if v, _ := c.node(lead).st.Snapshot().Get("after"); string(v) != "v" {
		t.Fatalf("restarted member %d did not catch up", lead)
	}
}

// recorder is a Handler that keeps what it receives.
type recorder struct {
	mu   sync.Mutex
	msgs []*pb.Message
	unr  atomic.Int64
}

func (r *recorder) Receive(_ context.Context, m *pb.Message) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	return nil
}

func (r *recorder) Unreachable(uint64) { r.unr.Add(1) }

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// pair starts transports for members 1 and 2; tweak adjusts member 1's
// config (the sender) before it starts.
func pair(t *testing.T, tweak func(c1, c2 *TCPConfig)) (*TCPTransport, *TCPTransport, *recorder) {
	t.Helper()
	l1, l2 := listen(t), listen(t)
	peers := map[uint64]string{1: l1.Addr().String(), 2: l2.Addr().String()}
	c1 := TCPConfig{ID: 1, ClusterID: 9, Listener: l1, Peers: peers, Secret: testSecret, RedialMax: 20 * time.Millisecond}
	c2 := TCPConfig{ID: 2, ClusterID: 9, Listener: l2, Peers: peers, Secret: testSecret}
	if tweak != nil {
		tweak(&c1, &c2)
	}
	t1, err := NewTCPTransport(c1)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := NewTCPTransport(c2)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	t2.Handle(rec)
	t.Cleanup(func() { t1.Close(); t2.Close() })
	return t1, t2, rec
}

func heartbeat(from, to uint64) *pb.Message {
	return &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(from), To: new(to), Term: new(uint64(1))}
}

func TestTCPDelivers(t *testing.T) {
	t1, _, rec := pair(t, nil)
	for range 100 {
		t1.Send([]*pb.Message{heartbeat(1, 2)})
	}
	waitFor(t, "100 messages", func() bool { return rec.count() == 100 })
}

// TestTCPRefusesStrangers: a wrong secret or another cluster's ID gets no
// message through, and both sides say why.
func TestTCPRefusesStrangers(t *testing.T) {
	cases := []struct {
		name  string
		tweak func(c1, c2 *TCPConfig)
		want  string
	}{
		{"secret", func(c, _ *TCPConfig) { c.Secret = []byte("another-secret-of-16+ bytes") }, "shared secret"},
		{"cluster", func(c, _ *TCPConfig) { c.ClusterID = 10 }, "cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t1, t2, rec := pair(t, tc.tweak)
			t1.Send([]*pb.Message{heartbeat(1, 2)})
			waitFor(t, "the handshake to fail on both sides", func() bool {
				peers, _, _ := t1.Peers()
				_, rej, last := t2.Peers()
				return strings.Contains(peers[2].LastError, tc.want) && rej > 0 && last != ""
			})
			for range 3 {
				t1.Send([]*pb.Message{heartbeat(1, 2)})
			}
			if n := rec.count(); n != 0 {
				t.Fatalf("%d messages got through", n)
			}
		})
	}
}

// TestTCPAuthenticatesFrames puts a proxy between the members that flips
// one bit of the first frame after the handshake: the receiver must refuse
// it (and not deliver it).
func TestTCPAuthenticatesFrames(t *testing.T) {
	l2 := listen(t)
	proxy := listen(t)
	defer proxy.Close()
	go func() {
		for {
			in, err := proxy.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", l2.Addr().String())
			if err != nil {
				in.Close()
				return
			}
			go io.Copy(in, out)
			go func() { // flip a bit in the first payload byte after the hello and the proof
				flipAt := helloSize + macSize + 4
				buf := make([]byte, 4096)
				seen := 0
				for {
					n, err := in.Read(buf)
					if n > 0 {
						if seen <= flipAt && flipAt < seen+n {
							buf[flipAt-seen] ^= 1
						}
						seen += n
						out.Write(buf[:n])
					}
					if err != nil {
						out.Close()
						return
					}
				}
			}()
		}
	}()
	l1 := listen(t)
	peers := map[uint64]string{1: l1.Addr().String(), 2: proxy.Addr().String()}
	t1, _ := NewTCPTransport(TCPConfig{ID: 1, ClusterID: 9, Listener: l1, Peers: peers, Secret: testSecret})
	defer t1.Close()
	t2, _ := NewTCPTransport(TCPConfig{ID: 2, ClusterID: 9, Listener: l2, Peers: peers, Secret: testSecret})
	defer t2.Close()
	rec := &recorder{}
	t2.Handle(rec)
	t1.Send([]*pb.Message{heartbeat(1, 2)})
	waitFor(t, "the altered frame to be refused", func() bool {
		_, rej, last := t2.Peers()
		return rej > 0 && strings.Contains(last, "authentication")
	})
	if rec.count() != 0 {
		t.Fatal("an altered frame was delivered")
	}
}

// TestTCPRefusesForgedSender: an authenticated member cannot speak for
// another one.
func TestTCPRefusesForgedSender(t *testing.T) {
	_, t2, rec := pair(t, nil)
	conn, err := net.Dial("tcp", t2.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	key, err := dialHandshake(conn, testSecret, hello{clusterID: 9, from: 1, to: 2}, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	fw := &frameWriter{w: bufio.NewWriter(conn), mac: newMacer(key)}
	fw.write(encodeInfo(PeerInfo{Name: "n1"}))
	b, _ := proto.Marshal(heartbeat(3, 2))
	fw.write(b)
	fw.w.Flush()
	waitFor(t, "the forged message to be refused", func() bool {
		_, rej, last := t2.Peers()
		return rej > 0 && strings.Contains(last, "from 3")
	})
	if rec.count() != 0 {
		t.Fatal("a message with a forged sender was delivered")
	}
}

// TestTCPRefusesDialerWithoutSecret: a dialer that ignores the acceptor's
// proof and answers with a made-up one gets nothing delivered.
func TestTCPRefusesDialerWithoutSecret(t *testing.T) {
	_, t2, rec := pair(t, nil)
	conn, err := net.Dial("tcp", t2.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := hello{clusterID: 9, from: 1, to: 2}
	conn.Write(h.encode())
	reply := make([]byte, 1+nonceSize+macSize)
	if _, err := io.ReadFull(conn, reply); err != nil {
		t.Fatal(err)
	}
	conn.Write(make([]byte, macSize)) // not the proof
	fw := &frameWriter{w: bufio.NewWriter(conn), mac: newMacer(make([]byte, 32))}
	b, _ := proto.Marshal(heartbeat(1, 2))
	fw.write(b)
	fw.w.Flush()
	waitFor(t, "the dialer to be refused", func() bool {
		_, rej, last := t2.Peers()
		return rej > 0 && strings.Contains(last, "shared secret")
	})
	if rec.count() != 0 {
		t.Fatal("a dialer without the secret got a message through")
	}
}

// TestTCPSlowPeerNeverBlocks: a peer that accepts connections but never
// reads must cost the sender dropped messages, never a blocked Send or
// unbounded memory.
func TestTCPSlowPeerNeverBlocks(t *testing.T) {
	sink := listen(t)
	defer sink.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, ever
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	l1 := listen(t)
	tr, err := NewTCPTransport(TCPConfig{ID: 1, ClusterID: 9, Listener: l1, Peers: map[uint64]string{2: sink.Addr().String()},
		Secret: testSecret, QueueMessages: 256, HandshakeTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	rec := &recorder{}
	tr.Handle(rec)
	big := &pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(1)), To: new(uint64(2)), Entries: []*pb.Entry{{Data: make([]byte, 4096)}}}
	for range 20000 {
		tr.Send([]*pb.Message{big})
	}
	peers, _, _ := tr.Peers()
	if p := peers[2]; p.Dropped == 0 || p.Queued > 256 {
		t.Fatalf("peer status %+v: want drops and at most 256 queued", p)
	}
	waitFor(t, "the peer to be reported unreachable", func() bool { return rec.unr.Load() > 0 })
}

func TestTCPConfigRefusesShortSecret(t *testing.T) {
	l := listen(t)
	defer l.Close()
	_, err := NewTCPTransport(TCPConfig{ID: 1, ClusterID: 9, Listener: l, Secret: []byte("short")})
	if err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("short secret: %v", err)
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrHandshake), ErrHandshake) {
		t.Fatal("unreachable")
	}
}

// stalled is a Handler that keeps what it receives and then blocks every
// Receive until release is closed: its member stops reading the link, so
// the sender's socket fills up.
type stalled struct {
	recorder
	release chan struct{}
}

func (s *stalled) Receive(ctx context.Context, m *pb.Message) error {
	s.recorder.Receive(ctx, m)
	<-s.release
	return nil
}

// TestTCPStalledPeerNeverBlocks: a peer whose link is up and
// authenticated but that stops reading must cost the sender dropped
// messages, never a blocked Send (Send writes to an idle link itself,
// tcpsend.go) or unbounded memory.
func TestTCPStalledPeerNeverBlocks(t *testing.T) {
	h := &stalled{release: make(chan struct{})}
	defer close(h.release)
	t1, t2, _ := pair(t, func(c1, _ *TCPConfig) {
		c1.QueueMessages = 64
		c1.WriteTimeout = time.Minute // the goroutine's write stays blocked
	})
	t2.Handle(h)
	t1.Handle(&h.recorder)
	t1.Send([]*pb.Message{heartbeat(1, 2)})
	waitFor(t, "the first message", func() bool { return h.count() == 1 })
	big := &pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(1)), To: new(uint64(2)), Entries: []*pb.Entry{{Data: make([]byte, 16<<10)}}}
	var sends atomic.Int64
	go func() {
		for range 2000 {
			t1.Send([]*pb.Message{big, big})
			sends.Add(1)
		}
	}()
	waitFor(t, "every Send to return", func() bool { return sends.Load() == 2000 })
	peers, _, _ := t1.Peers()
	if p := peers[2]; p.Dropped == 0 || p.Queued > 64 || !p.Connected {
		t.Fatalf("peer status %+v: want a connected link, drops and at most 64 queued", p)
	}
	waitFor(t, "the peer to be reported unreachable", func() bool { return h.unr.Load() > 0 })
}

// TestTCPKeepsOrder: one sender's messages arrive in the order sent,
// whether Send wrote them itself or queued them behind a link that was
// busy or not up yet (it starts sending while the link is dialed: the
// first messages are queued, the later ones must not pass them).
func TestTCPKeepsOrder(t *testing.T) {
	t1, _, rec := pair(t, func(c1, _ *TCPConfig) { c1.QueueMessages = 1 << 16 })
	const n = 50000
	for i := range n {
		m := heartbeat(1, 2)
		m.Commit = new(uint64(i + 1))
		t1.Send([]*pb.Message{m})
	}
	waitFor(t, "every message", func() bool { return rec.count() == n })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, m := range rec.msgs {
		if m.GetCommit() != uint64(i+1) {
			t.Fatalf("message %d carries commit %d: reordered", i+1, m.GetCommit())
		}
	}
}

// loopPair returns both ends of a TCP connection on loopback; they are
// closed when the test ends.
func loopPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln := listen(t)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

// bareSender is the sender to peer 2 at server's address of a transport
// with small queues that runs nothing by itself: the test drives its link.
func bareSender(t *testing.T, server net.Conn) *peerSender {
	tr := &TCPTransport{cfg: TCPConfig{QueueMessages: 16, QueueBytes: 1 << 20, WriteTimeout: 5 * time.Second}}
	tr.ctx, tr.cancel = context.WithCancel(context.Background())
	t.Cleanup(tr.cancel)
	return newPeerSender(tr, 2, server.LocalAddr().String())
}

// TestTCPSendQueuedFirst: with messages queued for the goroutine (a link
// just up, or just unblocked), Send must not write its own ahead of them
// even though the link is idle: they go after, in order.
func TestTCPSendQueuedFirst(t *testing.T) {
	client, server := loopPair(t)
	p := bareSender(t, server)
	key := make([]byte, 32)
	l := newPeerLink(client, key)
	p.link = l
	numbered := func(i uint64) *pb.Message { m := heartbeat(1, 2); m.Commit = new(i); return m }
	p.enqueue(numbered(1))
	p.enqueue(numbered(2))
	p.send([]*pb.Message{numbered(3)})
	if err := p.drain(l); err != nil {
		t.Fatal(err)
	}
	fr := &frameReader{r: bufio.NewReader(server), mac: newMacer(key), maxLen: 1 << 20}
	for want := uint64(1); want <= 3; want++ {
		b, err := fr.next()
		if err != nil {
			t.Fatal(err)
		}
		m := &pb.Message{}
		if err := proto.Unmarshal(b, m); err != nil {
			t.Fatal(err)
		}
		if m.GetCommit() != want {
			t.Fatalf("frame %d carries message %d, want %d: Send passed the queue", want, m.GetCommit(), want)
		}
	}
}

// TestTCPLinkUpSendsQueued: messages queued while the link was down go out
// as soon as a link is up, with no further Send to wake the goroutine
// (the wake-up that queued them may have been taken by the link that
// failed).
func TestTCPLinkUpSendsQueued(t *testing.T) {
	client, server := loopPair(t)
	p := bareSender(t, server)
	tr := p.t
	p.enqueue(heartbeat(1, 2)) // queued, no wake-up pending
	key := make([]byte, 32)
	done := make(chan error, 1)
	go func() { done <- p.stream(client, key) }()
	defer func() { tr.cancel(); <-done }()
	server.SetReadDeadline(time.Now().Add(30 * time.Second)) // a generous bound: the frames come at once or never
	fr := &frameReader{r: bufio.NewReader(server), mac: newMacer(key), maxLen: 1 << 20}
	for i, what := range []string{"the info frame", "the queued message"} {
		if _, err := fr.next(); err != nil {
			t.Fatalf("frame %d, %s: %v", i, what, err)
		}
	}
}

// TestTCPSendBounded: one Send of more than the queue's bound in bytes to
// an idle link (raft catching up a peer) keeps what the queue could hold
// and drops the rest, as a full queue does: the link's memory is bounded.
func TestTCPSendBounded(t *testing.T) {
	client, server := loopPair(t)
	p := bareSender(t, server)
	p.link = newPeerLink(client, make([]byte, 32))
	big := &pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(1)), To: new(uint64(2)), Entries: []*pb.Entry{{Data: make([]byte, 64<<10)}}}
	msgs := make([]*pb.Message, 64) // 4 MiB in one Send
	for i := range msgs {
		msgs[i] = big
	}
	p.send(msgs)
	if s, d := p.sent.Load(), p.dropped.Load(); d == 0 || s > 17 || s+d != 64 {
		t.Fatalf("%d sent and %d dropped of 64 appends of 64 KiB: want at most 1 MiB (and one message) kept, the rest dropped", s, d)
	}
}
