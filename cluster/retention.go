package cluster

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
)

// Raft log retention. The log is compacted after the store's checkpoints
// (a raft index the store no longer needs its raft log for), but never
// below what a peer still needs: on the leader each member and each joiner
// holds a lease on the log after its match index (raft's Progress),
// renewed while the peer answers. A lease lets go when it expires (the
// peer has been silent for RetainTTL) or when what it pins passes
// RetainMaxBytes: that peer then gets a snapshot. A snapshot transfer in
// flight holds the log after its index while it runs and for SnapshotGrace
// after it ends, so the member it brought up catches up from the log
// instead of asking for another snapshot (a snapshot loop).

// Lease states (LeaseStatus.State).
const (
	LeaseActive  = "active"
	LeaseExpired = "expired" // the peer was silent longer than RetainTTL
	LeaseEvicted = "evicted" // it pinned more than RetainMaxBytes
)

// LeaseStatus is the log one peer pins on the leader.
type LeaseStatus struct {
	Peer  uint64 `json:"peer"`
	Index uint64 `json:"pinned_index"` // the log after it is kept
	// Bytes is what keeping the log after Index costs on disk (whole
	// segments).
	Bytes    int64     `json:"bytes_pinned"`
	Expires  time.Time `json:"expires"`
	State    string    `json:"state"`
	Transfer bool      `json:"transfer"` // held by a snapshot transfer (in flight, or in its grace period)
}

// retention is the leader's table of leases; its own lock, as the
// compaction goroutine, the snapshot senders and Status use it.
type retention struct {
	mu     sync.Mutex
	peers  map[uint64]*lease // by peer, from raft's Progress
	xfers  map[uint64]*lease // by peer, held by snapshot transfers
	ttl    time.Duration
	grace  time.Duration
	maxLen int64
}

type lease struct {
	index   uint64
	expires time.Time
	state   string
	running bool // a transfer still in flight: no expiry yet
}

func newRetention(cfg *Config) *retention {
	return &retention{peers: map[uint64]*lease{}, xfers: map[uint64]*lease{},
		ttl: cfg.RetainTTL, grace: cfg.SnapshotGrace, maxLen: cfg.RetainMaxBytes}
}

// observe renews the leases from the leader's view of its peers: an
// active peer's lease moves to its match index. When this node does not
// lead, the table is cleared (only a leader's view of the peers is
// meaningful).
func (r *retention) observe(st raft.Status, self uint64, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st.RaftState != raft.StateLeader {
		clear(r.peers)
		return
	}
	for id := range r.peers {
		if _, ok := st.Progress[id]; !ok {
			delete(r.peers, id) // removed from the cluster
		}
	}
	for id, pr := range st.Progress {
		if id == self {
			continue
		}
		l := r.peers[id]
		if l == nil {
			l = &lease{index: pr.Match, expires: now.Add(r.ttl), state: LeaseActive}
			r.peers[id] = l
		}
		if pr.RecentActive && l.state != LeaseEvicted {
			l.index, l.expires, l.state = pr.Match, now.Add(r.ttl), LeaseActive
		} else if l.state == LeaseEvicted && pr.Match > l.index {
			l.index = pr.Match // caught up by a snapshot: it may pin again
			l.expires, l.state = now.Add(r.ttl), LeaseActive
		}
	}
}

// hold pins the log after index for a snapshot transfer to peer, until
// release and for the grace period after it.
func (r *retention) hold(peer, index uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.xfers[peer] = &lease{index: index, state: LeaseActive, running: true}
}

// release starts the grace period of peer's transfer hold.
func (r *retention) release(peer uint64, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.xfers[peer]; l != nil {
		l.running, l.expires = false, now.Add(r.grace)
	}
}

// floor returns the lowest index a compaction may go to: below the index
// of every active lease (bytes says what keeping the log after an index
// costs). Leases past their expiry or over the size cap stop counting, and
// are marked so.
func (r *retention) floor(now time.Time, bytes func(uint64) int64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := ^uint64(0)
	for _, l := range r.peers {
		r.settle(l, now, bytes)
		if l.state == LeaseActive {
			f = min(f, l.index)
		}
	}
	for id, l := range r.xfers {
		if !l.running && !now.Before(l.expires) {
			delete(r.xfers, id) // grace over: the peer's own lease holds it now
			continue
		}
		f = min(f, l.index) // a transfer's hold is never evicted: a loop costs more
	}
	return f
}

// settle expires or evicts l. r.mu is held.
func (r *retention) settle(l *lease, now time.Time, bytes func(uint64) int64) {
	switch {
	case l.state != LeaseActive:
	case !now.Before(l.expires):
		l.state = LeaseExpired
	case r.maxLen > 0 && bytes(l.index) > r.maxLen:
		l.state = LeaseEvicted
	}
}

// status lists the leases, by peer (a transfer's hold after the peer's own).
func (r *retention) status(now time.Time, bytes func(uint64) int64) []LeaseStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []LeaseStatus
	for id, l := range r.peers {
		r.settle(l, now, bytes)
		out = append(out, LeaseStatus{Peer: id, Index: l.index, Bytes: bytes(l.index), Expires: l.expires, State: l.state})
	}
	for id, l := range r.xfers {
		exp := l.expires
		if l.running {
			exp = time.Time{}
		}
		out = append(out, LeaseStatus{Peer: id, Index: l.index, Bytes: bytes(l.index), Expires: exp, State: LeaseActive, Transfer: true})
	}
	slices.SortFunc(out, func(a, b LeaseStatus) int {
		if c := cmp.Compare(a.Peer, b.Peer); c != 0 {
			return c
		}
		return cmpBool(a.Transfer, b.Transfer)
	})
	return out
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// CompactResult says what one compaction of the raft log did.
type CompactResult struct {
	// Index is the raft snapshot the log starts after now (unchanged if
	// nothing was compacted); Target what the store's checkpoints allowed,
	// and Floor what the leases held (^0: none).
	Index, Target, Floor uint64
	Dropped              []string // raft log segments removed
}

// CompactLog compacts the raft log up to the store's last checkpoint (its
// manifest's chain: the store needs no raft entry at or below it), keeping
// RetainEntries entries behind the applied index, the log every active
// lease pins (on the leader), and at least the last membership change.
// The node runs it every CompactInterval; tests and operators may call it.
func (n *Node) CompactLog() (CompactResult, error) {
	rs := n.raft.Status()
	now := time.Now()
	n.ret.observe(rs, n.cfg.ID, now)
	var res CompactResult
	res.Target = n.st.CurrentManifest().WALFirstIndex - 1
	res.Target = min(res.Target, rs.Applied)
	if rs.Applied > n.cfg.RetainEntries {
		res.Target = min(res.Target, rs.Applied-n.cfg.RetainEntries)
	} else {
		res.Target = 0
	}
	res.Floor = n.ret.floor(now, n.ls.logBytesAfter)
	st := n.ls.state()
	idx := min(res.Target, res.Floor)
	res.Index = st.SnapIndex
	if idx <= st.SnapIndex || idx < st.ConfIndex {
		return res, nil
	}
	dropped, err := n.ls.compact(idx)
	res.Dropped = dropped
	if err != nil {
		return res, err
	}
	res.Index = idx
	n.stats.compactions.Add(1)
	return res, nil
}

// compactLoop runs CompactLog every CompactInterval until the node stops.
// A failed compaction changes nothing (STATE is replaced atomically; a
// segment not dropped is dropped next time) and is tried again; Status
// shows the last error.
func (n *Node) compactLoop() {
	defer n.bg.Done()
	t := time.NewTicker(n.cfg.CompactInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if _, err := n.CompactLog(); err != nil {
				e := fmt.Sprintf("compact the raft log: %v", err)
				n.stats.compactErr.Store(&e)
			}
		case <-n.stop:
			return
		case <-n.stopped:
			return
		}
	}
}

// Leases lists the log each peer pins on this node (empty unless it leads).
func (n *Node) Leases() []LeaseStatus {
	return n.ret.status(time.Now(), n.ls.logBytesAfter)
}
