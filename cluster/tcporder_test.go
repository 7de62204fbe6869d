package cluster

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

// TestTCPSendOrderUnderLoad: two goroutines Send to one peer, each its own
// stream of numbered messages in batches of random sizes (1 byte to
// 256 KiB each); a third of the Sends first wait for the link to go idle,
// so that they write themselves, and the receiver stalls now and then, so
// that those writes stop part-way (EAGAIN) and the peer's goroutine takes
// the rest while more messages queue behind them. Each stream's messages
// must arrive in their order, and every message sent must arrive (or be
// counted dropped): a direct write that overtook queued messages, or a
// frame torn between Send's write and the goroutine's (which breaks the
// link and loses what was in it), fails it.
// KVTOOL_TCP_ORDER_MSGS sends more (default 3000 per stream).
func TestTCPSendOrderUnderLoad(t *testing.T) {
	per := 3000
	if n, err := strconv.Atoi(os.Getenv("KVTOOL_TCP_ORDER_MSGS")); err == nil && n > 0 {
		per = n
	}
	t1, t2, rec := pair(t, nil)
	// The receiver stalls every 32nd message until the senders made 40
	// more Sends (or are done): the socket's buffers fill, and Send's
	// writes stop part-way.
	var sends atomic.Int64
	var finished atomic.Bool
	var waiting atomic.Int32 // senders waiting for the link to go idle
	stall := &stallingHandler{rec: rec, sends: &sends, ready: func(mark int64) bool {
		return finished.Load() || waiting.Load() > 0 || sends.Load() >= mark+40
	}}
	stall.cond = sync.NewCond(&stall.mu)
	t2.Handle(stall)
	waitFor(t, "the link", func() bool {
		t1.Send([]*pb.Message{heartbeat(1, 2)})
		return rec.count() > 0
	})
	base := rec.count()
	sent := func() int { // the numbered messages received
		rec.mu.Lock()
		defer rec.mu.Unlock()
		k := 0
		for _, m := range rec.msgs[base:] {
			if m.GetType() != pb.MsgHeartbeat {
				k++
			}
		}
		return k
	}
	before, _, _ := t1.Peers()
	var wg sync.WaitGroup
	for s, typ := range []pb.MessageType{pb.MsgApp, pb.MsgSnapStatus} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(s), 7))
			for i := 0; i < per; {
				batch := make([]*pb.Message, 0, 20)
				for range 1 + rng.IntN(20) {
					if i == per {
						break
					}
					i++
					size := 1 + rng.IntN(1024)
					if rng.IntN(8) == 0 {
						size = 1 + rng.IntN(256<<10)
					}
					batch = append(batch, &pb.Message{Type: typ.Enum(), From: new(uint64(1)), To: new(uint64(2)),
						Index: new(uint64(i)), Entries: []*pb.Entry{{Data: make([]byte, size)}}})
				}
				if rng.IntN(3) == 0 {
					// Let the link go idle, so that this Send writes
					// itself (a busy link takes it into the queue).
					waiting.Add(1)
					stall.wake()
					eventually(func() bool { ps, _, _ := t1.Peers(); return ps[2].Queued == 0 })
					waiting.Add(-1)
				}
				t1.Send(batch)
				sends.Add(1)
				stall.wake()
			}
		}()
	}
	wg.Wait()
	finished.Store(true)
	stall.wake()
	waitFor(t, "every message sent and not dropped", func() bool {
		ps, _, _ := t1.Peers()
		return int64(sent())+ps[2].Dropped-before[2].Dropped >= int64(2*per)
	})
	ps, _, _ := t1.Peers()
	if _, refused, why := t2.Peers(); refused != 0 || ps[2].LastError != "" {
		t.Fatalf("frames refused: %d (%s); sender's last error %q", refused, why, ps[2].LastError)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	last := map[pb.MessageType]uint64{}
	got := map[pb.MessageType]int{}
	for _, m := range rec.msgs[base:] {
		if m.GetType() == pb.MsgHeartbeat {
			continue
		}
		if m.GetIndex() <= last[m.GetType()] {
			t.Fatalf("%v %d after %d", m.GetType(), m.GetIndex(), last[m.GetType()])
		}
		last[m.GetType()] = m.GetIndex()
		got[m.GetType()]++
	}
	t.Logf("received %v of %d each; dropped %d", got, per, ps[2].Dropped-before[2].Dropped)
}

// stallingHandler records messages and, every 32nd, waits until ready.
type stallingHandler struct {
	rec   *recorder
	sends *atomic.Int64
	ready func(mark int64) bool
	n     int
	mu    sync.Mutex
	cond  *sync.Cond
}

func (h *stallingHandler) Receive(ctx context.Context, m *pb.Message) error {
	h.rec.Receive(ctx, m)
	if h.n++; h.n%32 == 0 {
		mark := h.sends.Load()
		h.mu.Lock()
		for !h.ready(mark) {
			h.cond.Wait()
		}
		h.mu.Unlock()
	}
	return nil
}

func (h *stallingHandler) Unreachable(id uint64) { h.rec.Unreachable(id) }

func (h *stallingHandler) wake() {
	h.mu.Lock()
	h.cond.Broadcast()
	h.mu.Unlock()
}
