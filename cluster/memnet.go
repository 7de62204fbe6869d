package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// MemNetwork is an in-process network of Transports for tests, with
// injectable faults: dropped, delayed (hence reordered) and duplicated
// messages, partitions and crashed (isolated) members. Every message is
// marshalled and unmarshalled, as on a real wire, so members share no
// memory. It is safe for concurrent use.
type MemNetwork struct {
	mu       sync.Mutex
	rng      *rand.Rand
	faults   Faults
	ends     map[uint64]*memEnd
	cut      map[[2]uint64]bool // directed links that drop everything
	isolated map[uint64]bool
	closed   bool
	wg       sync.WaitGroup
	stats    NetStats
	streams  []*memStream // snapshot streams, cut when their link goes down
}

// Faults are the random faults a MemNetwork applies to every message.
type Faults struct {
	Drop      float64       // probability a message is lost
	Duplicate float64       // probability a message is delivered twice
	MaxDelay  time.Duration // each delivery waits a random time up to this (so messages reorder)
}

// NetStats counts what a MemNetwork did.
type NetStats struct {
	Sent, Delivered, Dropped, Duplicated int64
}

// memQueueLimit bounds the messages in flight on one directed link.
const memQueueLimit = 4096

// NewMemNetwork returns a network without faults; seed makes its random
// choices reproducible (up to goroutine scheduling).
func NewMemNetwork(seed uint64) *MemNetwork {
	return &MemNetwork{
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), ends: map[uint64]*memEnd{},
		cut: map[[2]uint64]bool{}, isolated: map[uint64]bool{},
	}
}

// Endpoint returns the transport of member id, replacing (and closing) an
// earlier one: a restarted member gets a fresh endpoint.
func (n *MemNetwork) Endpoint(id uint64) Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if old := n.ends[id]; old != nil {
		old.closed = true
	}
	e := &memEnd{net: n, id: id, inflight: map[uint64]int{}}
	n.ends[id] = e
	return e
}

// SetFaults sets the random faults applied from now on.
func (n *MemNetwork) SetFaults(f Faults) {
	n.mu.Lock()
	n.faults = f
	n.mu.Unlock()
}

// Partition cuts every link between members of different groups; members
// in no group keep their links. It replaces the previous partition.
func (n *MemNetwork) Partition(groups ...[]uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]uint64]bool{}
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					n.cut[[2]uint64{a, b}] = true
				}
			}
		}
	}
	n.cutDownStreamsLocked()
}

// Heal removes the partition (isolated members stay isolated).
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	n.cut = map[[2]uint64]bool{}
	n.mu.Unlock()
}

// Isolate makes member id unreachable both ways, as a crashed machine:
// nothing it sends from now on is delivered, nothing reaches it.
func (n *MemNetwork) Isolate(id uint64) {
	n.mu.Lock()
	n.isolated[id] = true
	n.cutDownStreamsLocked()
	n.mu.Unlock()
}

// Rejoin undoes Isolate.
func (n *MemNetwork) Rejoin(id uint64) {
	n.mu.Lock()
	delete(n.isolated, id)
	n.mu.Unlock()
}

// Stats returns the counters so far.
func (n *MemNetwork) Stats() NetStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Close stops all deliveries and waits for those under way.
func (n *MemNetwork) Close() {
	n.mu.Lock()
	n.closed = true
	n.cutDownStreamsLocked()
	n.mu.Unlock()
	n.wg.Wait()
}

// linkUp reports whether from can reach to now. n.mu is held.
func (n *MemNetwork) linkUp(from, to uint64) bool {
	return !n.closed && !n.isolated[from] && !n.isolated[to] && !n.cut[[2]uint64{from, to}]
}

// send schedules the deliveries of one message from e.
func (n *MemNetwork) send(e *memEnd, m *pb.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		return // never happens for a message raft built
	}
	to := m.GetTo()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stats.Sent++
	copies := 1
	switch {
	case e.closed || !n.linkUp(e.id, to) || n.rng.Float64() < n.faults.Drop || e.inflight[to] >= memQueueLimit:
		n.stats.Dropped++
		return
	case n.rng.Float64() < n.faults.Duplicate:
		n.stats.Duplicated++
		copies = 2
	}
	for range copies {
		delay := time.Duration(0)
		if n.faults.MaxDelay > 0 {
			delay = time.Duration(n.rng.Int64N(int64(n.faults.MaxDelay)))
		}
		e.inflight[to]++
		n.wg.Add(1)
		time.AfterFunc(delay, func() { n.deliver(e, to, b) })
	}
}

// deliver hands one message to its recipient's handler if the link is
// still up.
func (n *MemNetwork) deliver(from *memEnd, to uint64, b []byte) {
	defer n.wg.Done()
	n.mu.Lock()
	from.inflight[to]--
	dst := n.ends[to]
	up := n.linkUp(from.id, to) && !from.closed && dst != nil && !dst.closed && dst.h != nil
	if up {
		n.stats.Delivered++
	} else {
		n.stats.Dropped++
	}
	n.mu.Unlock()
	if !up {
		return
	}
	m := &pb.Message{}
	if proto.Unmarshal(b, m) != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	dst.h.Receive(ctx, m)
}

// memEnd is one member's Transport on a MemNetwork. Its fields are guarded
// by the network's mu.
type memEnd struct {
	net      *MemNetwork
	id       uint64
	h        Handler
	sh       StreamHandler
	closed   bool
	inflight map[uint64]int // messages in flight per recipient
}

func (e *memEnd) Handle(h Handler) {
	e.net.mu.Lock()
	e.h = h
	e.net.mu.Unlock()
}

func (e *memEnd) Send(msgs []*pb.Message) {
	for _, m := range msgs {
		e.net.send(e, m)
	}
}

func (e *memEnd) Close() error {
	e.net.mu.Lock()
	e.closed = true
	keep := e.net.streams[:0]
	for _, s := range e.net.streams {
		if s.from == e.id || s.to == e.id {
			s.close()
			continue
		}
		keep = append(keep, s)
	}
	e.net.streams = keep
	e.net.mu.Unlock()
	return nil
}

// OpenStream implements Streams over an in-memory pipe (net.Pipe, which
// takes deadlines). The stream is cut, as a broken connection, when the
// link goes down (Isolate, Partition) or CutStreams is called.
func (e *memEnd) OpenStream(ctx context.Context, to, term uint64) (net.Conn, error) {
	n := e.net
	n.mu.Lock()
	dst := n.ends[to]
	up := n.linkUp(e.id, to) && !e.closed && dst != nil && !dst.closed && dst.sh != nil
	n.mu.Unlock()
	if !up {
		return nil, fmt.Errorf("kvtool/cluster: member %x is unreachable from member %x", to, e.id)
	}
	if err := dst.sh.AcceptStream(e.id, term); err != nil {
		return nil, fmt.Errorf("kvtool/cluster: member %x refused the snapshot stream: %w", to, err)
	}
	pa, pb := net.Pipe()
	ms := &memStream{from: e.id, to: to}
	ms.a, ms.b = &memConn{Conn: pa, s: ms, n: n}, &memConn{Conn: pb, s: ms, n: n}
	n.mu.Lock()
	n.streams = append(n.streams, ms)
	n.mu.Unlock()
	go dst.sh.ServeStream(e.id, term, ms.b)
	return ms.a, nil
}

// memConn is one end of a memStream; closing it forgets the stream.
type memConn struct {
	net.Conn
	s *memStream
	n *MemNetwork
}

func (c *memConn) Close() error {
	c.n.mu.Lock()
	if i := slices.Index(c.n.streams, c.s); i >= 0 {
		c.n.streams = slices.Delete(c.n.streams, i, i+1)
	}
	c.n.mu.Unlock()
	c.s.a.(*memConn).Conn.Close()
	return c.s.b.(*memConn).Conn.Close()
}

// HandleStreams implements Streams.
func (e *memEnd) HandleStreams(h StreamHandler) {
	e.net.mu.Lock()
	e.sh = h
	e.net.mu.Unlock()
}

// memStream is a snapshot stream on a MemNetwork.
type memStream struct {
	from, to uint64
	a, b     net.Conn
}

// close breaks both ends (the network's mu may be held).
func (s *memStream) close() {
	s.a.(*memConn).Conn.Close()
	s.b.(*memConn).Conn.Close()
}

// CutStreams breaks every snapshot stream open now (a cut connection);
// it returns how many it cut.
func (n *MemNetwork) CutStreams() int {
	n.mu.Lock()
	ss := n.streams
	n.streams = nil
	n.mu.Unlock()
	for _, s := range ss {
		s.close()
	}
	return len(ss)
}

// cutDownStreams breaks the streams whose link is down. n.mu is held.
func (n *MemNetwork) cutDownStreamsLocked() {
	keep := n.streams[:0]
	for _, s := range n.streams {
		if n.linkUp(s.from, s.to) {
			keep = append(keep, s)
			continue
		}
		s.close()
	}
	n.streams = keep
}
