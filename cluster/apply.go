package cluster

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvtool/kvtool/store"
)

// Request deduplication lives in the replicated state itself, under a
// reserved key prefix, so every node decides alike whether an entry is a
// retry, and checkpoints, transfers and replay carry the table along:
//
//	DedupPrefix + "id/" + ID     -> index that applied the request (decimal)
//	DedupPrefix + "slot/" + %08x -> the ID recorded in that slot
//
// Every request carries an ID (the client's, or one its node made up), so
// a node may propose it again while it waits. A request applied at index i
// takes slot i mod DedupWindow, evicting the ID recorded there, so an ID
// is remembered for at least DedupWindow entries. A request whose check
// failed changed nothing and is not recorded: a retry evaluates it afresh.
const DedupPrefix = "\xff\xffkvtool/dedup/"

func dedupKey(id string) string { return DedupPrefix + "id/" + id }

func slotKey(slot uint64) string { return fmt.Sprintf("%sslot/%08x", DedupPrefix, slot) }

// applyResult is what applying a proposal decided, for the node that
// proposed it.
type applyResult struct {
	entry    uint64 // the entry applied
	index    uint64 // the entry that applied the request (an earlier one for a duplicate)
	dup      bool   // the request ID had already applied at index
	attempt  uint64 // the Propose call whose entry applied it (request.attempt)
	checkErr error  // a failed check (*store.CheckError) or invalid transaction: nothing changed
}

// applyCommitted applies committed entries in log order (those the store
// already holds are skipped). Runs of consecutive entries whose
// preparation needs nothing the entries before them write to the store
// (empty entries, malformed entries and batches of version 3: what a
// member proposes for plain writes) are applied together, as one store
// evaluation and one publication (store.ApplyTxnsAt): the copy-on-write
// paths of a shard are copied once per run instead of once per entry
// (issue 11 "Speed"). Every other entry applies alone, after the run
// before it.
func (n *Node) applyCommitted(ents []*pb.Entry) error {
	var run []preparedEntry
	for _, e := range ents {
		if e.GetIndex() <= n.applied {
			continue // the store had it when the node started
		}
		if pe, ok := n.prepareRunEntry(e); ok {
			run = append(run, pe)
			continue
		}
		if err := n.applyRun(run); err != nil {
			return err
		}
		run = run[:0]
		if err := n.applyEntry(e); err != nil {
			return err
		}
	}
	return n.applyRun(run)
}

// preparedEntry is an entry of a run, ready for the store: its
// transaction (none for a no-op) and the requests to answer.
type preparedEntry struct {
	idx     uint64
	txn     store.EntryTxn
	fresh   []*request // requests applied (or refused, aborted) by txn
	dups    []batchDup // requests an earlier entry decided
	aborted bool       // txn is invalid: the store logs its OnAbort
}

// prepareRunEntry prepares e for a run, if it may join one (see
// applyCommitted).
func (n *Node) prepareRunEntry(e *pb.Entry) (preparedEntry, bool) {
	idx, data := e.GetIndex(), e.GetData()
	switch {
	case e.GetType() != pb.EntryNormal:
		return preparedEntry{}, false
	case len(data) == 0:
		return preparedEntry{idx: idx}, true
	case data[0] != batchVersion:
		return preparedEntry{}, false
	}
	reqs, err := decodeBatch(data)
	if err != nil {
		return preparedEntry{idx: idx}, true // every node rejects it alike: a no-op
	}
	return n.prepareBatch(idx, reqs), true
}

// applyRun applies a run of prepared entries (consecutive indexes) to the
// store as one evaluation and publication, then answers their requests.
func (n *Node) applyRun(run []preparedEntry) error {
	if len(run) == 0 {
		return nil
	}
	first, last := run[0].idx, run[len(run)-1].idx
	txns := make([]store.EntryTxn, len(run))
	for i, pe := range run {
		txns[i] = pe.txn
	}
	_, checkErrs, err := n.st.ApplyTxnsAt(context.Background(), first, txns)
	if err != nil {
		return fmt.Errorf("kvtool/cluster: apply entries %d to %d: %w", first, last, err)
	}
	for i, pe := range run {
		if pe.txn.Txn != nil && (checkErrs[i] != nil) != pe.aborted {
			// The batch index recorded another outcome than the store's:
			// stop rather than answer, or remember, what did not happen.
			return fmt.Errorf("kvtool/cluster: apply entry %d: the store decided the batch (%v) otherwise than its validity (refused: %t)", pe.idx, checkErrs[i], pe.aborted)
		}
		for _, r := range pe.fresh {
			n.waiters.deliver(r.id, applyResult{entry: pe.idx, index: pe.idx, checkErr: checkErrs[i], attempt: r.attempt})
		}
		for _, d := range pe.dups {
			n.waiters.deliver(d.id, duplicateResult(pe.idx, d.id, d.v))
		}
	}
	n.applied = last
	return nil
}

// applyEntry applies one committed entry to the store at its index.
func (n *Node) applyEntry(e *pb.Entry) error {
	idx := e.GetIndex()
	if idx <= n.applied {
		return nil // the store had it when the node started
	}
	var err error
	switch e.GetType() {
	case pb.EntryConfChange, pb.EntryConfChangeV2:
		err = n.applyConf(idx, e)
	default:
		err = n.applyRequest(idx, e.GetData())
	}
	if err != nil {
		return fmt.Errorf("kvtool/cluster: apply entry %d: %w", idx, err)
	}
	n.applied = idx
	return nil
}

// applyRequest applies a normal entry: nothing for an empty one (a new
// leader's first entry), else the client request it holds.
func (n *Node) applyRequest(idx uint64, data []byte) error {
	if len(data) == 0 {
		_, _, err := n.st.ApplyTxnAt(context.Background(), idx, nil)
		return err
	}
	if data[0] > maxEntryVersion {
		return fmt.Errorf("%w: version %d at index %d, this build knows 1 to %d; run the newer kvtool on this member and start it again",
			ErrNewerEntry, data[0], idx, maxEntryVersion)
	}
	if data[0] == batchVersion || data[0] == batchVersionSlots {
		reqs, err := decodeBatch(data)
		if err != nil {
			_, _, err := n.st.ApplyTxnAt(context.Background(), idx, nil) // every node rejects it alike
			return err
		}
		return n.applyBatch(idx, data[0], reqs)
	}
	req, err := decodeRequest(data)
	if err != nil {
		_, _, err := n.st.ApplyTxnAt(context.Background(), idx, nil) // every node rejects it alike
		return err
	}
	if req.dedup {
		if v, ok := n.decided(req.id); ok {
			return n.applyDuplicate(idx, req.id, v)
		}
	}
	txn, onAbort := req.txn, []store.Op(nil)
	if req.dedup {
		n.batchIDs.singles = true // dedupOps writes dedupKey(req.id)
		// The ID is recorded whatever the outcome: a copy of this request
		// applied later (a re-proposal, a client's retry) must find it
		// decided, or a check that failed now could pass then and the
		// request would apply after it was answered as aborted.
		applied := strconv.AppendUint(nil, idx, 10)
		txn = &store.Txn{Ops: append(slices.Clip(req.txn.Ops), n.dedupOps(idx, req, applied)...)}
		onAbort = n.dedupOps(idx, req, append([]byte(abortedMark), applied...))
	}
	_, checkErr, err := n.st.ApplyTxnAtOr(context.Background(), idx, txn, onAbort)
	if err != nil {
		return err
	}
	n.waiters.deliver(req.id, applyResult{entry: idx, index: idx, checkErr: checkErr, attempt: req.attempt})
	return nil
}

// applyDuplicate applies a retry of a request already decided at the
// index held in v: a no-op, answered with the original index, and with a
// check failure if the original failed its check (the retry must not get
// a second chance to apply).
func (n *Node) applyDuplicate(idx uint64, id string, v []byte) error {
	if _, _, err := n.st.ApplyTxnAt(context.Background(), idx, nil); err != nil {
		return err
	}
	n.waiters.deliver(id, duplicateResult(idx, id, v))
	return nil
}

// dedupOps returns the writes that record req's ID in slot idx mod
// DedupWindow (evicting the ID the slot held) with the value v: the
// decimal index the request applied at, or abortedMark and it.
func (n *Node) dedupOps(idx uint64, req *request, v []byte) []store.Op {
	slot := slotKey(idx % n.cfg.DedupWindow)
	ops := make([]store.Op, 0, 3)
	if old, ok := n.st.GetNewest(slot); ok {
		ops = append(ops, store.Op{Kind: store.OpDelete, Key: dedupKey(string(old))})
	}
	return append(ops,
		store.Op{Kind: store.OpPut, Key: slot, Value: []byte(req.id)},
		store.Op{Kind: store.OpPut, Key: dedupKey(req.id), Value: v})
}

// abortedMark prefixes the dedup record of a request whose check failed.
const abortedMark = "a"

func decodeConfChange(e *pb.Entry) (pb.ConfChangeI, error) {
	if e.GetType() == pb.EntryConfChange {
		cc := &pb.ConfChange{}
		return cc, proto.Unmarshal(e.GetData(), cc)
	}
	cc := &pb.ConfChangeV2{}
	return cc, proto.Unmarshal(e.GetData(), cc)
}
