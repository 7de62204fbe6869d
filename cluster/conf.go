package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/confchange"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/kvtool/kvtool/store"
)

// ReservedPrefix starts every key the cluster keeps in the replicated
// state for itself (DedupPrefix, MemberPrefix): clients cannot write
// under it.
const ReservedPrefix = "\xff\xffkvtool/"

// MemberPrefix starts the member records in the replicated state:
//
//	MemberPrefix + %016x(ID) -> MemberRecord as JSON
//
// A record is written by the apply of the membership change that adds the
// member (it travels in the change's Context) and deleted by the one that
// removes it, so checkpoints, snapshots and replay carry every peer
// address along. Only records of members in the applied ConfState count.
const MemberPrefix = ReservedPrefix + "member/"

func memberKey(id uint64) string { return fmt.Sprintf("%s%016x", MemberPrefix, id) }

// MemberRecord is what the cluster knows of one member.
type MemberRecord struct {
	Name     string `json:"name"`
	ID       uint64 `json:"id"`
	PeerAddr string `json:"peer_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	// StayLearner keeps the member a learner (serve --learner): the
	// leader does not promote it on its own.
	StayLearner bool `json:"stay_learner,omitempty"`
}

// confContext is the Context of every membership change this package
// proposes: a token the proposer waits on, and the record of the member
// it adds.
type confContext struct {
	Token  string        `json:"token"`
	Member *MemberRecord `json:"member,omitempty"`
}

// Membership is the applied membership: raft's ConfState and the records
// of its members (a founding member without one is known from --cluster).
type Membership struct {
	Index   uint64 // the entry it is in force after
	Conf    *pb.ConfState
	Records map[uint64]MemberRecord
}

// Has reports whether id is a member (voter, learner, or either while a
// joint change is under way).
func (m Membership) Has(id uint64) bool { return confHas(m.Conf, id) }

func confHas(cs *pb.ConfState, id uint64) bool {
	return slices.Contains(cs.GetVoters(), id) || slices.Contains(cs.GetLearners(), id) ||
		slices.Contains(cs.GetVotersOutgoing(), id) || slices.Contains(cs.GetLearnersNext(), id)
}

// DefaultPromoteLag is Config.PromoteLag's default.
const DefaultPromoteLag = 64

// AddLearner adds the member rec describes as a learner (it receives the
// log, does not vote) and returns once the change applied on this node.
// Adding a member that already is one, at the same peer address, changes
// nothing and succeeds (a joiner that restarted asks again). A different
// member of that name is an error wrapping ErrMemberExists.
func (n *Node) AddLearner(ctx context.Context, rec MemberRecord) error {
	if err := checkMemberName(rec.Name); err != nil {
		return err
	}
	if rec.ID == 0 {
		rec.ID = MemberID(rec.Name)
	}
	if m := n.Membership(); m.Has(rec.ID) {
		if old, ok := m.Records[rec.ID]; ok && old.PeerAddr != rec.PeerAddr {
			return fmt.Errorf("%w: %s (%x) is a member at peer address %s, not %s (remove it first)", ErrMemberExists, rec.Name, rec.ID, old.PeerAddr, rec.PeerAddr)
		}
		return nil
	}
	cc := single(pb.ConfChangeAddLearnerNode, rec.ID)
	return n.changeConf(ctx, cc, &rec, "add learner "+rec.Name, func(cs *pb.ConfState) bool { return confHas(cs, rec.ID) })
}

// Promote makes learner id a voter once the change applied on this node.
// It runs on the leader (elsewhere the error wraps ErrNotLeader), which
// refuses (ErrLagging) while the learner's log trails its own by more than
// Config.PromoteLag entries or 10%.
func (n *Node) Promote(ctx context.Context, id uint64) error {
	if slices.Contains(n.Membership().Conf.GetVoters(), id) {
		return nil
	}
	if err := n.learnerReady(id); err != nil {
		return err
	}
	return n.changeConf(ctx, single(pb.ConfChangeAddNode, id), nil, fmt.Sprintf("promote %x", id),
		func(cs *pb.ConfState) bool {
			return slices.Contains(cs.GetVoters(), id) && len(cs.GetVotersOutgoing()) == 0
		})
}

// Remove removes member id and returns once the change applied on this
// node. The leader hands its leadership to another voter before it
// removes itself. Removing a member that is none changes nothing.
func (n *Node) Remove(ctx context.Context, id uint64) error {
	if !n.Membership().Has(id) {
		return nil
	}
	if err := n.handOver(ctx, id); err != nil {
		return err
	}
	return n.changeConf(ctx, single(pb.ConfChangeRemoveNode, id), nil, fmt.Sprintf("remove %x", id),
		func(cs *pb.ConfState) bool { return !confHas(cs, id) })
}

// Replace makes learner add a voter and removes voter old in one joint
// change (ConfChangeV2: both or neither), so the cluster never runs with
// one voter more or less. Like Promote it runs on the leader and refuses a
// lagging learner.
func (n *Node) Replace(ctx context.Context, old, add uint64) error {
	if !slices.Contains(n.Membership().Conf.GetVoters(), old) {
		return fmt.Errorf("%w: %x is not a voter", ErrUnknownMember, old)
	}
	if err := n.learnerReady(add); err != nil {
		return err
	}
	if err := n.handOver(ctx, old); err != nil {
		return err
	}
	cc := &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{
		{Type: pb.ConfChangeAddNode.Enum(), NodeId: new(add)},
		{Type: pb.ConfChangeRemoveNode.Enum(), NodeId: new(old)},
	}}
	return n.changeConf(ctx, cc, nil, fmt.Sprintf("replace %x by %x", old, add), func(cs *pb.ConfState) bool {
		return slices.Contains(cs.GetVoters(), add) && !confHas(cs, old) && len(cs.GetVotersOutgoing()) == 0
	})
}

func single(t pb.ConfChangeType, id uint64) *pb.ConfChangeV2 {
	return &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: t.Enum(), NodeId: new(id)}}}
}

// handOver moves leadership away from id, if id leads, before it is
// removed: a leader that removes itself leaves the cluster without one
// for an election timeout.
func (n *Node) handOver(ctx context.Context, id uint64) error {
	if lead, _ := n.Leader(); lead != id {
		return nil
	}
	rs := n.raft.Status()
	var best uint64
	var bestMatch uint64
	for _, v := range n.Membership().Conf.GetVoters() {
		if pr := rs.Progress[v]; v != id && (best == 0 || pr.Match > bestMatch) {
			best, bestMatch = v, pr.Match
		}
	}
	if best == 0 {
		return fmt.Errorf("kvtool/cluster: %x is the only voter: it cannot be removed", id)
	}
	return n.TransferLeader(ctx, best)
}

// learnerReady returns nil if learner id may be promoted now: this node
// leads, and id's log is in step (replicating, active, within PromoteLag
// entries and 10% of the leader's).
func (n *Node) learnerReady(id uint64) error {
	rs := n.raft.Status()
	if rs.RaftState != raft.StateLeader {
		return fmt.Errorf("%w: node %x is not the leader (leader %x): promote on the leader", ErrNotLeader, n.cfg.ID, rs.Lead)
	}
	pr, ok := rs.Progress[id]
	if !ok || !pr.IsLearner {
		return fmt.Errorf("%w: %x is not a learner of cluster %x", ErrUnknownMember, id, n.cfg.ClusterID)
	}
	last := rs.Progress[n.cfg.ID].Match
	lag := last - min(pr.Match, last)
	if pr.State != tracker.StateReplicate || !pr.RecentActive || pr.Match*10 < last*9 || lag > n.cfg.PromoteLag {
		return fmt.Errorf("%w: learner %x holds the log up to %d, the leader up to %d (%d behind, state %s; promotion needs at most %d and 10%%): wait until it catches up",
			ErrLagging, id, pr.Match, last, lag, pr.State, n.cfg.PromoteLag)
	}
	return nil
}

// changeConf proposes cc and returns once done holds for the applied
// ConfState on this node. raft drops a change silently while another is
// unapplied, and a leader change can lose it, so the change is proposed
// again every ProposalRetry, at every change of leader and after every
// other membership change, until done holds, its apply rejected it, or
// ctx ends.
func (n *Node) changeConf(ctx context.Context, cc *pb.ConfChangeV2, rec *MemberRecord, what string, done func(*pb.ConfState) bool) error {
	token := newRequestID()
	b, err := json.Marshal(confContext{Token: token, Member: rec})
	if err != nil {
		return err
	}
	cc.Context = b
	ch := n.waiters.add(confWaitKey(token))
	defer n.waiters.remove(confWaitKey(token), ch)
	retry := time.NewTimer(0)
	defer retry.Stop()
	var leaderCh, confCh <-chan struct{}
	for {
		select {
		case res := <-ch:
			if res.checkErr != nil {
				return fmt.Errorf("kvtool/cluster: %s: %w", what, res.checkErr)
			}
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, n.deadlineErr(ctx, "membership change"))
		case <-n.done():
			if done(n.Membership().Conf) {
				return nil // this node applied the change, and stopped (it removed itself)
			}
			return n.stoppedErr()
		case <-retry.C:
		case <-leaderCh:
		case <-confCh:
		}
		leaderCh, confCh = n.leaderChanged(), n.confChanged()
		if done(n.Membership().Conf) {
			return nil
		}
		// raft takes or refuses (no leader known) the proposal as soon
		// as the Ready loop steps it; a leader change proposes again. One
		// attempt waits at most ProposalRetry for the loop (busy with a
		// snapshot install), so this loop sees a stop or ctx.
		pctx, cancel := context.WithTimeout(ctx, n.cfg.ProposalRetry)
		err := n.raft.ProposeConfChange(pctx, cc)
		cancel()
		switch {
		case err == nil, errors.Is(err, raft.ErrProposalDropped), pctx.Err() != nil && ctx.Err() == nil:
		case ctx.Err() != nil:
			return fmt.Errorf("%s: %w", what, n.deadlineErr(ctx, "membership change"))
		default:
			return n.stoppedErr()
		}
		n.stats.confProposals.Add(1)
		retry.Reset(n.cfg.ProposalRetry)
	}
}

func confWaitKey(token string) string { return "\x00conf/" + token }

// Membership returns the applied membership.
func (n *Node) Membership() Membership {
	n.memMu.Lock()
	defer n.memMu.Unlock()
	return n.mem
}

// confChanged returns a channel closed at the next applied membership
// change.
func (n *Node) confChanged() <-chan struct{} {
	n.memMu.Lock()
	defer n.memMu.Unlock()
	return n.memCh
}

// setMembership publishes a new applied membership and tells the
// observer (Config.OnMembership).
func (n *Node) setMembership(m Membership) {
	n.memMu.Lock()
	n.mem = m
	n.memMu.Unlock()
	if n.cfg.OnMembership != nil {
		n.cfg.OnMembership(m)
	}
	n.memMu.Lock() // waiters wake once the observer knows it too
	close(n.memCh)
	n.memCh = make(chan struct{})
	n.memMu.Unlock()
}

// loadMembership reads the member records of the store's published state
// (at start: the state the node resumes from).
func loadMembership(st *store.Store, cs *pb.ConfState, idx uint64) Membership {
	m := Membership{Index: idx, Conf: cs, Records: map[uint64]MemberRecord{}}
	st.Snapshot().Scan(store.ScanOptions{Prefix: MemberPrefix}, func(_ string, v []byte) bool {
		var r MemberRecord
		if json.Unmarshal(v, &r) == nil && r.ID != 0 {
			m.Records[r.ID] = r
		}
		return true
	})
	return m
}

// applyConf applies a membership change at idx. The change is checked
// against the membership in force (checkConf: every node decides alike);
// raft is told of every conf entry, a rejected one as a no-op. The store
// logs at idx the member records the change carries: a put for a member
// it adds with a record, a delete for one it removes. They depend on the
// entry alone (not on whether it was accepted), so a node that replays the
// entry after a crash, its ConfState already past it, logs the same.
// A node that finds itself removed writes its REMOVED marker before its
// state file says so, and stops (Err wraps ErrRemoved).
func (n *Node) applyConf(idx uint64, e *pb.Entry) error {
	cc, derr := decodeConfChange(e)
	var v2 *pb.ConfChangeV2
	var cctx confContext
	if derr == nil {
		v2 = cc.AsV2()
		json.Unmarshal(v2.GetContext(), &cctx) //nolint:errcheck // a change without our context carries no record
	}
	mem := n.Membership()
	removed := false
	if idx > n.confIndex {
		reason := "it does not decode"
		if derr == nil {
			reason = checkConf(mem.Conf, v2)
		}
		if reason != "" {
			if len(mem.Conf.GetVoters()) > 0 { // raft refuses (panics on) any change to an empty config
				n.raft.ApplyConfChange(noopConfChange())
			}
			n.waiters.deliver(confWaitKey(cctx.Token), applyResult{entry: idx, checkErr: fmt.Errorf("%w: entry %d: %s", ErrConfRejected, idx, reason)})
			v2 = nil
		} else {
			var before raft.Status
			if n.leading {
				before = n.raft.Status()
			}
			cs := n.raft.ApplyConfChange(v2)
			n.farewells(before, mem.Conf, cs, idx)
			removed = confHas(mem.Conf, n.cfg.ID) && !confHas(cs, n.cfg.ID)
			if removed {
				if err := writeRemoved(n.cfg.FS, n.raftDir(), n.cfg.ClusterID, idx); err != nil {
					return err
				}
			}
			if err := n.ls.setConf(cs, idx); err != nil {
				return err
			}
			n.snaps.noteConf(idx, cs)
			n.confIndex = idx
			mem = Membership{Index: idx, Conf: cs, Records: mem.Records}
		}
	}
	ops := recordOps(v2, cctx.Member)
	if _, _, err := n.st.ApplyTxnAt(context.Background(), idx, txnOf(ops)); err != nil {
		return err
	}
	n.setMembership(withRecords(mem, idx, ops))
	n.waiters.deliver(confWaitKey(cctx.Token), applyResult{entry: idx})
	if removed {
		return fmt.Errorf("%w: member %x of cluster %x at index %d", ErrRemoved, n.cfg.ID, n.cfg.ClusterID, idx)
	}
	return nil
}

// checkConf returns why cc cannot apply to cs ("" if it can): what raft
// itself refuses (it would panic), and what this package never proposes
// but a late copy of a retried change could ask: turning a voter back
// into a learner, or making a voter of a member that is not a learner
// (removed meanwhile).
func checkConf(cs *pb.ConfState, cc *pb.ConfChangeV2) string {
	for _, c := range cc.GetChanges() {
		id := c.GetNodeId()
		switch c.GetType() {
		case pb.ConfChangeAddLearnerNode:
			if slices.Contains(cs.GetVoters(), id) {
				return fmt.Sprintf("%x is a voter; it is not made a learner again", id)
			}
		case pb.ConfChangeAddNode:
			if !confHas(cs, id) && !addsLearner(cc, id) {
				return fmt.Sprintf("%x is not a member: only a learner is promoted", id)
			}
		}
	}
	trk := tracker.MakeProgressTracker(1, 0)
	cfg, prs, err := confchange.Restore(confchange.Changer{Tracker: trk, LastIndex: 1}, cs)
	if err != nil {
		return err.Error()
	}
	trk.Config, trk.Progress = cfg, prs
	ch := confchange.Changer{Tracker: trk, LastIndex: 1}
	if cc.LeaveJoint() {
		_, _, err = ch.LeaveJoint()
	} else if autoLeave, ok := cc.EnterJoint(); ok {
		_, _, err = ch.EnterJoint(autoLeave, cc.GetChanges()...)
	} else {
		_, _, err = ch.Simple(cc.GetChanges()...)
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

func addsLearner(cc *pb.ConfChangeV2, id uint64) bool {
	return slices.ContainsFunc(cc.GetChanges(), func(c *pb.ConfChangeSingle) bool {
		return c.GetNodeId() == id && c.GetType() == pb.ConfChangeAddLearnerNode
	})
}

// noopConfChange is what raft is told for a rejected change: raft skips a
// change of node 0 (the way etcd rejects one).
func noopConfChange() *pb.ConfChangeV2 {
	return &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: pb.ConfChangeAddNode.Enum(), NodeId: new(uint64(0))}}}
}

// recordOps returns the store writes of change cc: the record of the
// member it adds (with a record), deletes for those it removes.
func recordOps(cc *pb.ConfChangeV2, rec *MemberRecord) []store.Op {
	var ops []store.Op
	for _, c := range cc.GetChanges() {
		id := c.GetNodeId()
		switch c.GetType() {
		case pb.ConfChangeAddLearnerNode, pb.ConfChangeAddNode:
			if rec != nil && rec.ID == id {
				b, _ := json.Marshal(rec)
				ops = append(ops, store.Op{Kind: store.OpPut, Key: memberKey(id), Value: b})
			}
		case pb.ConfChangeRemoveNode:
			ops = append(ops, store.Op{Kind: store.OpDelete, Key: memberKey(id)})
		}
	}
	return ops
}

func txnOf(ops []store.Op) *store.Txn {
	if len(ops) == 0 {
		return nil
	}
	return &store.Txn{Ops: ops}
}

// withRecords returns m at idx with ops (recordOps) applied to a copy of
// its records.
func withRecords(m Membership, idx uint64, ops []store.Op) Membership {
	recs := make(map[uint64]MemberRecord, len(m.Records)+1)
	for id, r := range m.Records {
		recs[id] = r
	}
	for _, op := range ops {
		var r MemberRecord
		if op.Kind == store.OpPut && json.Unmarshal(op.Value, &r) == nil {
			recs[r.ID] = r
			continue
		}
		for id := range recs {
			if memberKey(id) == op.Key {
				delete(recs, id)
			}
		}
	}
	return Membership{Index: max(m.Index, idx), Conf: proto.Clone(m.Conf).(*pb.ConfState), Records: recs}
}

// autoPromote runs on every node: while it leads, it promotes each
// learner whose record does not ask to stay one, once it is in step
// (learnerReady), one at a time, until the node stops.
func (n *Node) autoPromote() {
	t := time.NewTicker(n.cfg.TickInterval * time.Duration(max(1, n.cfg.ElectionTicks/2)))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-n.done():
			return
		}
		if lead, _ := n.Leader(); lead != n.cfg.ID {
			continue
		}
		m := n.Membership()
		for _, id := range m.Conf.GetLearners() {
			rec, ok := m.Records[id]
			if !ok || rec.StayLearner || n.learnerReady(id) != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.ProposalRetry)
			if n.Promote(ctx, id) == nil {
				n.stats.autoPromotions.Add(1)
			}
			cancel()
		}
	}
}
