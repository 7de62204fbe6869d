package cluster

import (
	"fmt"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// Farewells: once a change removing member X applies on the leader, raft
// no longer tracks X and sends it nothing, so a follower that holds the
// change (or not yet) never learns that it committed, and never stops. The
// leader therefore runs raft's own probing for X a little longer: it sends
// X the append raft would have sent (the log after a point both hold, up
// to the change, with the change's index as commit) and moves that point
// with X's answers, as raft does: an answer that X's commit index is
// further (an append below it is ignored) or that the logs differ there.
// It goes on for farewellTimeouts election timeouts (an answer cannot
// tell that X committed the change, only that X holds it; a member that
// applied it stops, and the rest of the appends go nowhere).

// farewellTimeouts is how many election timeouts a farewell lasts.
const farewellTimeouts = 3

// farewellBytes bounds the entries of one farewell append.
const farewellBytes = 4 << 20

// farewell is the probing of one removed member.
type farewell struct {
	idx, term uint64 // the change that removed it, and the leader's term then
	prev      uint64 // the index the next append follows
}

// farewellTable is the leader's farewells in flight, by member.
type farewellTable struct {
	mu sync.Mutex
	m  map[uint64]*farewell
}

// farewells starts a farewell to each member the change at idx removed
// (old -> cs), if this node led when it applied it (before is raft's
// status from just before).
func (n *Node) farewells(before raft.Status, old, cs *pb.ConfState, idx uint64) {
	if before.RaftState != raft.StateLeader {
		return
	}
	for id, pr := range before.Progress {
		if id == n.cfg.ID || !confHas(old, id) || confHas(cs, id) {
			continue
		}
		f := &farewell{idx: idx, term: before.GetTerm(), prev: min(pr.Match, idx)}
		n.fw.mu.Lock()
		if n.fw.m == nil {
			n.fw.m = map[uint64]*farewell{}
		}
		n.fw.m[id] = f
		n.fw.mu.Unlock()
		go n.sayFarewell(id, f)
	}
}

// sayFarewell sends the farewell's append every tick (the network may
// lose some) until its time is up.
func (n *Node) sayFarewell(id uint64, f *farewell) {
	t := time.NewTicker(n.cfg.TickInterval)
	defer t.Stop()
	defer func() {
		n.fw.mu.Lock()
		if n.fw.m[id] == f {
			delete(n.fw.m, id)
		}
		n.fw.mu.Unlock()
	}()
	for range farewellTimeouts * n.cfg.ElectionTicks {
		n.fw.mu.Lock()
		prev := f.prev
		n.fw.mu.Unlock()
		n.sendFarewell(id, f, prev)
		select {
		case <-t.C:
		case <-n.done():
			return
		}
	}
	n.fw.mu.Lock()
	n.noteFarewell(fmt.Sprintf("to %x: change %d, last append after %d", id, f.idx, f.prev))
	n.fw.mu.Unlock()
}

// sendFarewell sends id the append after prev, up to the change.
func (n *Node) sendFarewell(id uint64, f *farewell, prev uint64) {
	logTerm, err := n.ls.Term(prev)
	if err != nil {
		n.noteFarewell(fmt.Sprintf("to %x: no term for %d: %v", id, prev, err))
		return
	}
	m := &pb.Message{Type: pb.MsgApp.Enum(), From: new(n.cfg.ID), To: new(id), Term: new(f.term),
		LogTerm: new(logTerm), Index: new(prev), Commit: new(prev)}
	if prev < f.idx {
		ents, err := n.ls.Entries(prev+1, f.idx+1, farewellBytes)
		if err != nil {
			n.noteFarewell(fmt.Sprintf("to %x: entries after %d: %v", id, prev, err))
			return
		}
		m.Entries = ents
		m.Commit = new(prev + uint64(len(ents)))
	}
	n.tr.Send([]*pb.Message{m})
}

// farewellAnswer takes a removed member's answer to a farewell append;
// false if m is no such answer (raft gets it).
func (n *Node) farewellAnswer(m *pb.Message) bool {
	if m.GetType() != pb.MsgAppResp {
		return false
	}
	n.fw.mu.Lock()
	defer n.fw.mu.Unlock()
	f := n.fw.m[m.GetFrom()]
	if f == nil {
		return false
	}
	switch {
	case m.GetTerm() > f.term: // it moved on to a later term: this leader's word no longer counts
	case !m.GetReject() && m.GetIndex() >= f.idx:
		// It holds the change; that answer may be to an append sent
		// before the change committed, so it may not know: from now on
		// the append is empty, after the change, with the change's
		// index as commit.
		f.prev = f.idx
	case !m.GetReject():
		f.prev = m.GetIndex() // it holds (or committed) the log up to there
	case m.GetRejectHint() < f.prev:
		f.prev = m.GetRejectHint()
	case f.prev > 0:
		f.prev--
	}
	return true
}

// noteFarewell keeps what the last farewell did, for tests and status.
func (n *Node) noteFarewell(s string) { n.lastFarewell.Store(&s) }
