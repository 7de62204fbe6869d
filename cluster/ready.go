package cluster

import (
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kvtool/kvtool/segment"
)

// run is the node's one raft goroutine: it steps what the other
// goroutines queued (rawnode.go), ticks raft's clock and handles each
// Ready, until Close or a failure.
func (n *Node) run() {
	defer close(n.stopped)
	defer func() {
		switch p := recover().(type) {
		case nil:
		case raftPanic:
			n.fail(n.raftPanicErr(p))
		case *storageError: // raft panics with the raft log's read error
			n.fail(p)
		default:
			panic(p) // a bug of ours: keep its stack
		}
	}()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	n.ticks = ticker.C
	for {
		select { // a busy loop still ticks and stops
		case <-n.ticks:
			n.raft.tick()
		case <-n.stop:
			return
		default:
		}
		n.raft.drain()
		if rd, ok := n.raft.ready(); ok {
			if err := n.handleReady(rd); err != nil {
				n.fail(err)
				return
			}
			continue
		}
		select {
		case <-n.raft.wake:
		case <-n.ticks:
			n.raft.tick()
		case <-n.stop:
			return
		}
	}
}

// handleReady is raft's contract, in its order: entries and hard state are
// durable before any message that depends on them leaves; committed
// entries are applied in log order; then raft may go on. A leader's
// messages depend on nothing in this Ready's writes (its own acceptance of
// its entries is counted only at Advance), so a leader sends first and
// writes its log while the followers write theirs (raft thesis 10.2.1).
// Committed entries this node's raft log already holds durably (written
// by an earlier Ready) are applied while this Ready's entries are being
// written and synced, not after: an entry's commit usually arrives with
// the next entries, and would otherwise wait for their fsync on every
// node (issue 11 "Speed"). Entries of this Ready, a snapshot and a
// membership change are applied only after the writes, as before.
// Nothing here waits on anything but the raft log's fsync: the store
// publishes each applied entry at once (the raft log holds it durably) and
// syncs its own WAL behind it (store.ApplyTxnAt).
func (n *Node) handleReady(rd raft.Ready) error {
	leader := n.observe(rd)
	msgs := rd.Messages
	if leader {
		n.send(msgs)
		msgs = nil
	} else {
		msgs = n.sendForwards(msgs)
	}
	early := n.durableCommitted(rd)
	p, werr := n.write(rd)
	handed := p != nil && len(early) > 0
	if handed {
		n.ls.wake() // the flusher writes while the early entries apply
	}
	// The early entries were durable before this Ready and do not depend
	// on its writes, so they apply even when those fail at once (the log
	// can report an fsync failure of this Ready's first entries while its
	// later ones are still being queued).
	if err := n.applyEntries(early); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	if err := n.finishWrite(rd, p, handed); err != nil {
		return err
	}
	n.send(msgs)
	if err := n.apply(rd, len(early)); err != nil {
		return err
	}
	n.raft.advance(rd)
	return nil
}

// durableCommitted returns the committed entries of rd that may be
// applied before rd's writes: the leading ones that the raft log held
// durably before rd (every earlier Ready's writes were waited for) and
// that are normal entries; none when rd installs a snapshot. An entry at
// or past rd.Entries' first index is not among them, even below the
// log's last index: rd writes it over another (a deposed leader's, which
// a new leader's append replaced, committed, in this Ready).
func (n *Node) durableCommitted(rd raft.Ready) []*pb.Entry {
	if !raft.IsEmptySnap(rd.Snapshot) {
		return nil
	}
	durable, _ := n.ls.LastIndex()
	if len(rd.Entries) > 0 {
		durable = min(durable, rd.Entries[0].GetIndex()-1)
	}
	i := 0
	for _, e := range rd.CommittedEntries {
		if e.GetIndex() > durable || e.GetType() != pb.EntryNormal {
			break
		}
		i++
	}
	return rd.CommittedEntries[:i]
}

// observe records a change of leader or role and reports whether this
// node leads in this Ready.
func (n *Node) observe(rd raft.Ready) bool {
	if rd.SoftState != nil {
		n.observeLeader(rd.SoftState, rd.HardState.GetTerm())
		n.leading = rd.SoftState.RaftState == raft.StateLeader
	} else if term := rd.HardState.GetTerm(); term > 0 {
		n.observeTerm(term)
	}
	return n.leading
}

// write installs rd.Snapshot first (snapshot.go: the log then starts
// after it) and appends rd.Entries to the raft log (cutting a replaced
// suffix first); it returns the pending write of the last entry (nil when
// there are none).
func (n *Node) write(rd raft.Ready) (*segment.Pending, error) {
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.installSnapshot(rd.Snapshot); err != nil {
			return nil, err
		}
	}
	return n.ls.append(rd.Entries)
}

// finishWrite makes rd's entries durable (raft's MustSync is true
// whenever there are entries), then saves rd.HardState: a new term or
// vote durably, with a commit index that never runs ahead of the durable
// log. The loop writes and syncs the entries itself, unless it handed
// them to the log's flusher (handed) to apply entries meanwhile: then it
// waits for the flusher, stepping what arrives (awaitDurable). A hand-off
// and the wake-up back cost two goroutine wake-ups per Ready; what the
// loop would step while it waits can only be sent in the next Ready,
// after the fsync either way, so after its own fsync it steps it then.
func (n *Node) finishWrite(rd raft.Ready, p *segment.Pending, handed bool) error {
	if p != nil {
		var err error
		if handed {
			err = n.awaitDurable(p)
		} else {
			err = p.Wait() // writes and syncs them here (segment.Options.CallerFlush)
		}
		if err != nil {
			return fmt.Errorf("kvtool/cluster: fsync raft log: %w", err)
		}
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := n.ls.setHardState(rd.HardState); err != nil {
			return err
		}
	}
	return nil
}

// awaitDurable waits for the fsync of p and meanwhile steps what arrives
// (the followers' acknowledgements, proposals) and ticks the clock:
// raft allows any step between a Ready and its Advance (raft.Node's own
// goroutine does the same). What those steps make raft send comes in the
// next Ready; an answer that depends on entries not yet durable (an
// append's or a vote's) raft holds until the Ready after their write.
func (n *Node) awaitDurable(p *segment.Pending) error {
	for {
		select {
		case <-p.Done():
			return p.Wait()
		case <-n.raft.wake:
			n.raft.drain()
		case <-n.ticks:
			n.raft.tick()
		}
	}
}

// sendForwards sends at once the requests a follower forwards to the
// leader (proposals, ReadIndex requests): they state nothing about this
// node's log or vote, so they need not wait for this Ready's fsync, which
// would otherwise sit on the path of every write made on a follower. It
// returns the other messages, in their order, to send once the writes
// they depend on are durable.
func (n *Node) sendForwards(msgs []*pb.Message) []*pb.Message {
	var fwd []*pb.Message
	rest := msgs[:0:0]
	for _, m := range msgs {
		switch m.GetType() {
		case pb.MsgProp, pb.MsgReadIndex:
			fwd = append(fwd, m)
		default:
			rest = append(rest, m)
		}
	}
	if len(fwd) == 0 {
		return msgs
	}
	n.send(fwd)
	return rest
}

// send hands messages to the transport, which never blocks. A snapshot
// message carries only metadata: snapshots.send streams the bytes through
// transfer/ on a goroutine of its own and then sends the message.
func (n *Node) send(msgs []*pb.Message) {
	out := msgs[:0:0]
	now := time.Now()
	for _, m := range msgs {
		switch m.GetType() {
		case pb.MsgSnap:
			n.snaps.send(m) // its bytes go through transfer/, off this goroutine
			continue
		case pb.MsgHeartbeat:
			n.rtt.sent(m.GetTo(), now)
		}
		out = append(out, m)
	}
	if len(out) > 0 {
		n.tr.Send(out)
	}
}

// apply applies the committed entries after the first done (applied
// before the writes) to the store in log order (the store publishes them
// without waiting for its WAL's fsync) and answers the read states raft
// confirmed.
func (n *Node) apply(rd raft.Ready, done int) error {
	if err := n.applyEntries(rd.CommittedEntries[done:]); err != nil {
		return err
	}
	for _, rs := range rd.ReadStates {
		n.reads.deliver(string(rs.RequestCtx), rs.Index)
	}
	return nil
}

// applyEntries applies ents in order (apply.go).
func (n *Node) applyEntries(ents []*pb.Entry) error {
	if err := n.applyCommitted(ents); err != nil {
		return err
	}
	if n.snaps == nil || len(ents) == 0 {
		return nil
	}
	if h := n.snaps.stagedHint.Load(); h != 0 && ents[len(ents)-1].GetIndex() >= h {
		n.snaps.dropIfSuperseded(n.st.Snapshot().Index())
	}
	return nil
}
