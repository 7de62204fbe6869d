package cluster

import (
	"sync"
	"time"
)

// rttTable measures the round trip to each peer as the leader sees it:
// from a heartbeat to the peer's answer, which includes the peer stepping
// it into raft (not its disk: a heartbeat writes nothing). One heartbeat
// per peer is timed at a time; one left unanswered for longer than stale
// (lost) is given up and the next one timed.
type rttTable struct {
	mu    sync.Mutex
	m     map[uint64]*rttEntry
	stale time.Duration
}

type rttEntry struct {
	sent   time.Time     // the timed heartbeat's departure; zero if none is out
	last   time.Duration // the last round trip measured
	smooth time.Duration // exponentially weighted average (1/8 per sample)
}

// RoundTrip is the measured round trip to one peer.
type RoundTrip struct {
	Last   time.Duration // the last sample
	Smooth time.Duration // the moving average
}

// sent notes a heartbeat leaving for peer at now.
func (t *rttTable) sent(peer uint64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[peer]
	if e == nil {
		e = &rttEntry{}
		t.m[peer] = e
	}
	if e.sent.IsZero() || now.Sub(e.sent) > t.stale {
		e.sent = now
	}
}

// answered notes a heartbeat answer from peer arriving at now.
func (t *rttTable) answered(peer uint64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[peer]
	if e == nil || e.sent.IsZero() {
		return
	}
	d := now.Sub(e.sent)
	e.sent = time.Time{}
	e.last = d
	if e.smooth == 0 {
		e.smooth = d
	} else {
		e.smooth += (d - e.smooth) / 8
	}
}

// get returns the round trip to peer (zero if never measured).
func (t *rttTable) get(peer uint64) RoundTrip {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[peer]; e != nil {
		return RoundTrip{Last: e.last, Smooth: e.smooth}
	}
	return RoundTrip{}
}
