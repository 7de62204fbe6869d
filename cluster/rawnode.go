package cluster

import (
	"context"
	"sync"
	"sync/atomic"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// raftNode is the node's raft.RawNode, driven by the node's one raft
// goroutine (ready.go run), and the queue through which every other
// goroutine reaches it. raft.Node ran a goroutine of its own and took each
// message, proposal and Ready through a channel hand-off (a proposal's
// caller blocked until that goroutine took it); on a loaded machine each
// hand-off waited to be scheduled (issue 11 "Speed": about twenty
// goroutine wake-ups per forwarded write). Here peers' messages,
// proposals, ReadIndex requests, conf changes, leadership transfers,
// snapshot and reachability reports are appended to one mutex-guarded
// slice with a 1-buffered wake channel: many arriving together cost one
// wake-up, and the loop steps all of them before it takes the next Ready.
//
// mu guards rn: the loop holds it while it steps, takes a Ready, advances
// or applies a conf change (never while it writes, waits for an fsync,
// sends or applies entries), and Status takes it from any goroutine.
type raftNode struct {
	mu   sync.Mutex
	rn   *raft.RawNode
	self uint64 // this member's raft ID

	qmu   sync.Mutex
	q     []raftOp      // queued for the loop
	spare []raftOp      // the loop's other buffer
	wake  chan struct{} // 1-buffered: q went from empty to not empty

	stopped <-chan struct{} // the loop ended: nothing queued is stepped any more
	dropped atomic.Int64    // peers' messages dropped because the queue was full
}

// maxQueuedMessages bounds the peers' messages queued for the loop; past
// it one is dropped, as a lossy network would (raft sends again), so a
// flood never grows memory while the loop installs a snapshot.
// Proposals and the node's own requests are never dropped.
const maxQueuedMessages = 16384

type opKind uint8

const (
	opStep        opKind = iota // m, from a peer
	opPropose                   // m: a MsgProp of this node
	opConfChange                // cc
	opReadIndex                 // rctx
	opTransfer                  // id: the transferee
	opCampaign                  //
	opUnreachable               // id
	opSnapStatus                // id, failed
)

// raftOp is one request for the loop. res, if set, gets raft's error (1
// buffered; never blocks the loop); with okToo also a nil one.
type raftOp struct {
	kind   opKind
	failed bool
	okToo  bool
	id     uint64
	m      *pb.Message
	cc     *pb.ConfChangeV2
	rctx   []byte
	res    chan error
}

func newRaftNode(cfg *raft.Config, stopped <-chan struct{}) (*raftNode, error) {
	rn, err := raft.NewRawNode(cfg)
	if err != nil {
		return nil, err
	}
	return &raftNode{rn: rn, self: cfg.ID, wake: make(chan struct{}, 1), stopped: stopped}, nil
}

// push queues op and wakes the loop if it may be waiting.
func (r *raftNode) push(op raftOp) {
	r.qmu.Lock()
	if op.kind == opStep && len(r.q) >= maxQueuedMessages {
		r.qmu.Unlock()
		r.dropped.Add(1)
		return
	}
	r.q = append(r.q, op)
	first := len(r.q) == 1
	r.qmu.Unlock()
	if first { // a later push finds the loop already woken for this one
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// call queues op and waits for raft's answer (nil when raft took it).
func (r *raftNode) call(ctx context.Context, op raftOp) error {
	op.res, op.okToo = make(chan error, 1), true
	r.push(op)
	select {
	case err := <-op.res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-r.stopped:
		// The loop may have taken op and then stopped (say at the very
		// entry op proposed): both cases are ready and select picks either,
		// so the answer raft gave wins over the stop.
		select {
		case err := <-op.res:
			return err
		default:
			return raft.ErrStopped
		}
	}
}

// drain steps everything queued (the loop only).
func (r *raftNode) drain() {
	r.qmu.Lock()
	ops := r.q
	r.q, r.spare = r.spare[:0], nil
	r.qmu.Unlock()
	if len(ops) == 0 {
		r.qmu.Lock()
		r.spare = ops
		r.qmu.Unlock()
		return
	}
	r.stepAll(ops)
	clear(ops)
	r.qmu.Lock()
	r.spare = ops[:0]
	r.qmu.Unlock()
}

// stepAll steps ops under r.mu, which a panic of raft's (raftPanic, which
// the loop recovers) releases too: Status must not hang on a failed node.
func (r *raftNode) stepAll(ops []raftOp) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range ops {
		r.stepLocked(&ops[i])
	}
}

// stepLocked hands one op to raft and answers it. r.mu is held.
func (r *raftNode) stepLocked(op *raftOp) {
	var err error
	switch op.kind {
	case opStep:
		if op.m.GetType() == pb.MsgProp {
			// A proposal forwarded to this node is proposed as its own
			// (raft.Node did the same).
			op.m.From = new(r.self)
		}
		err = r.rn.Step(op.m)
	case opPropose:
		err = r.rn.Step(op.m)
	case opConfChange:
		err = r.rn.ProposeConfChange(op.cc)
	case opReadIndex:
		r.rn.ReadIndex(op.rctx)
	case opTransfer:
		r.rn.TransferLeader(op.id)
	case opCampaign:
		err = r.rn.Campaign()
	case opUnreachable:
		r.rn.ReportUnreachable(op.id)
	case opSnapStatus:
		st := raft.SnapshotFinish
		if op.failed {
			st = raft.SnapshotFailure
		}
		r.rn.ReportSnapshot(op.id, st)
	}
	if op.res != nil && (err != nil || op.okToo) {
		op.res <- err
	}
}

// ready returns raft's next Ready, if it has one (the loop only; the
// previous one was advanced).
func (r *raftNode) ready() (raft.Ready, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.rn.HasReady() {
		return raft.Ready{}, false
	}
	return r.rn.Ready(), true
}

// advance tells raft rd was handled (the loop only).
func (r *raftNode) advance(rd raft.Ready) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rn.Advance(rd)
}

// tick advances raft's clock (the loop only).
func (r *raftNode) tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rn.Tick()
}

// ApplyConfChange applies a committed membership change to raft (the loop
// only, as it applies the entry).
func (r *raftNode) ApplyConfChange(cc pb.ConfChangeI) *pb.ConfState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rn.ApplyConfChange(cc)
}

// Status returns raft's status; any goroutine.
func (r *raftNode) Status() raft.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rn.Status()
}

// step queues a message from a peer.
func (r *raftNode) step(m *pb.Message) { r.push(raftOp{kind: opStep, m: m}) }

// proposeAsync queues a proposal of data without waiting for raft: the
// channel gets raft's error if it refuses the proposal
// (raft.ErrProposalDropped: no leader known, a leadership transfer under
// way) and nothing when raft took it, so a proposer that waits for its
// entry on other channels is not woken for nothing.
func (r *raftNode) proposeAsync(data []byte) <-chan error {
	op := raftOp{kind: opPropose, m: &pb.Message{Type: pb.MsgProp.Enum(), Entries: []*pb.Entry{{Data: data}}}, res: make(chan error, 1)}
	op.m.From = new(r.self)
	r.push(op)
	return op.res
}

// Propose queues a proposal and waits until raft took or refused it.
func (r *raftNode) Propose(ctx context.Context, data []byte) error {
	m := &pb.Message{Type: pb.MsgProp.Enum(), From: new(r.self), Entries: []*pb.Entry{{Data: data}}}
	return r.call(ctx, raftOp{kind: opPropose, m: m})
}

// ProposeConfChange queues a membership change and waits until raft took
// or refused it.
func (r *raftNode) ProposeConfChange(ctx context.Context, cc *pb.ConfChangeV2) error {
	return r.call(ctx, raftOp{kind: opConfChange, cc: cc})
}

// ReadIndex queues a ReadIndex request; its answer comes in a Ready's
// ReadStates (or never: a lost request is made again, read.go).
func (r *raftNode) ReadIndex(rctx []byte) { r.push(raftOp{kind: opReadIndex, rctx: rctx}) }

// TransferLeader queues a request to hand leadership to transferee.
func (r *raftNode) TransferLeader(transferee uint64) {
	r.push(raftOp{kind: opTransfer, id: transferee})
}

// Campaign queues an election and waits until raft started it.
func (r *raftNode) Campaign(ctx context.Context) error {
	return r.call(ctx, raftOp{kind: opCampaign})
}

// ReportUnreachable queues a report that a message to id was lost.
func (r *raftNode) ReportUnreachable(id uint64) { r.push(raftOp{kind: opUnreachable, id: id}) }

// ReportSnapshot queues how a snapshot transfer to id ended.
func (r *raftNode) ReportSnapshot(id uint64, st raft.SnapshotStatus) {
	r.push(raftOp{kind: opSnapStatus, id: id, failed: st == raft.SnapshotFailure})
}
