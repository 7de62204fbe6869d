package cluster

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// echo is a Handler that answers every message with an append response
// through its transport, as a follower answers an append.
type echo struct {
	tr Transport
	id uint64
}

func (e *echo) Receive(_ context.Context, m *pb.Message) error {
	e.tr.Send([]*pb.Message{{Type: pb.MsgAppResp.Enum(), From: new(e.id), To: new(m.GetFrom()), Index: new(m.GetIndex())}})
	return nil
}
func (e *echo) Unreachable(uint64) {}

// counter is a Handler that counts the answers and wakes who waits.
type counter struct {
	mu   sync.Mutex
	cond *sync.Cond
	n    uint64
}

func (c *counter) Receive(_ context.Context, m *pb.Message) error {
	c.mu.Lock()
	c.n++
	c.cond.Broadcast()
	c.mu.Unlock()
	return nil
}
func (c *counter) Unreachable(uint64) {}

func (c *counter) waitFor(n uint64) {
	c.mu.Lock()
	for c.n < n {
		c.cond.Wait()
	}
	c.mu.Unlock()
}

// BenchmarkTCPRoundTrip measures the peer transport alone: member 1 sends
// `inflight` appends of 300 bytes at a time to member 2, which answers
// each through its own transport; an op is one append and its answer.
// cpu-us/op is the process's user+system time per op (less sensitive to
// the machine's load than ns/op).
//
//	go test -run XXX -bench TCPRoundTrip -benchtime 20000x ./cluster/
func BenchmarkTCPRoundTrip(b *testing.B) {
	for _, inflight := range []int{1, 16} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			t1, t2 := benchPair(b)
			c := &counter{}
			c.cond = sync.NewCond(&c.mu)
			t1.Handle(c)
			t2.Handle(&echo{tr: t2, id: 2})
			app := func(i int) *pb.Message {
				return &pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(1)), To: new(uint64(2)), Index: new(uint64(i)),
					Entries: []*pb.Entry{{Data: make([]byte, 300)}}}
			}
			t1.Send([]*pb.Message{app(0)}) // the link is up
			c.waitFor(1)
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			sent := 0
			for sent < b.N {
				k := min(inflight, b.N-sent)
				for j := range k {
					t1.Send([]*pb.Message{app(sent + j + 1)})
				}
				sent += k
				c.waitFor(uint64(sent + 1))
			}
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) - syscall.TimevalToNsec(ru0.Utime) +
				syscall.TimevalToNsec(ru1.Stime) - syscall.TimevalToNsec(ru0.Stime))
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}

// benchPair starts transports for members 1 and 2.
func benchPair(b *testing.B) (*TCPTransport, *TCPTransport) {
	l1, l2 := listen(b), listen(b)
	peers := map[uint64]string{1: l1.Addr().String(), 2: l2.Addr().String()}
	t1, err := NewTCPTransport(TCPConfig{ID: 1, ClusterID: 9, Listener: l1, Peers: peers, Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	t2, err := NewTCPTransport(TCPConfig{ID: 2, ClusterID: 9, Listener: l2, Peers: peers, Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { t1.Close(); t2.Close() })
	return t1, t2
}
