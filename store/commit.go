package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
)

// Commit applies txn atomically and durably and returns its log index.
//
// It follows DESIGN.md "Transactions and shards", in batches (batch.go):
// the transaction joins the queue of the batch committer, whose leader
// takes the gates of every shard the batch touches in ascending order
// (ctx may give up while the transaction waits in the queue), evaluates
// each transaction on the batch's private copy-on-write versions of the
// shards, and on a failed check drops that transaction's effects
// (returning a *CheckError; nothing of it is logged; see settleCheck for
// when the failure is reported). The batch's other transactions are
// logged as one WAL batch and — still under the gates, so that log order
// matches staging order on every shard — the batch's versions become the
// shards' newest. A later batch may stage on top of this one before it is
// durable; nothing is published or acknowledged before it is. The WAL's
// flusher publishes durable entries in index order, each batch whole
// (onDurable); Commit returns once its entry is published.
func (s *Store) Commit(ctx context.Context, txn *Txn) (uint64, error) {
	if err := txn.Validate(); err != nil {
		return 0, err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	if s.readOnly {
		return 0, ErrReadOnly
	}
	if s.replica {
		return 0, ErrReplica
	}
	if s.failedFlag.Load() {
		return 0, s.Err()
	}
	for {
		idx, p, err := s.stageBatched(ctx, txn)
		var ce *CheckError
		if errors.As(err, &ce) {
			retry, err := s.settleCheck(ctx, txn, idx, ce)
			if retry {
				continue
			}
			return 0, err
		}
		if err != nil {
			return 0, err
		}
		return s.finish(idx, p)
	}
}

// settleCheck decides what a failed check reports. A verdict and its
// message may rest only on durable, published state (DESIGN.md,
// "Transactions and shards", step 3): the check may have seen a value that
// is logged but not yet durable, and if that fsync then fails the value
// never existed. seen is the index of the newest entry the staged view of
// the transaction's shards included. If it is published, the failure
// stands. Otherwise settleCheck waits until it is (or the store failed:
// then it returns the store's failure, never the value) and decides the
// transaction again against the published root. A failure there is
// reported, with the published value; a pass means the state moved on, and
// retry tells the caller to stage the transaction afresh.
func (s *Store) settleCheck(ctx context.Context, txn *Txn, seen uint64, ce *CheckError) (retry bool, err error) {
	if s.root.Load().index >= seen {
		return false, ce
	}
	if h := s.checkWaitHook; h != nil {
		h(seen)
	}
	if err := s.WaitApplied(ctx, seen); err != nil {
		if s.failedFlag.Load() {
			return false, err
		}
		return false, fmt.Errorf("kvtool/store: waiting for index %d, which a failed check saw, to become durable: %w", seen, err)
	}
	if err := s.decidePublished(ctx, txn); err != nil {
		return false, err
	}
	return true, nil
}

// decidePublished evaluates txn against the published root, changing
// nothing, and returns the *CheckError of its first failed operation, or
// nil.
//
// It holds the gates of the touched shards while it evaluates: a write
// copies the shard's tree, and a copy-on-write Copy is not read-only (it
// gives the tree it copies a new isolation id), so every Copy of a shard's
// tree must happen under that shard's gate. The published tree of a shard
// is often Store.staged's too, which writers copy under the gate, and two
// failed transactions may be deciding on the same published tree.
func (s *Store) decidePublished(ctx context.Context, txn *Txn) error {
	st := newStaging(txn, s.root.Load().shards)
	if err := s.acquire(ctx, st.shards); err != nil {
		return err
	}
	defer s.release(st.shards)
	for i, op := range txn.Ops {
		if err := st.apply(i, op); err != nil {
			return err
		}
	}
	return nil
}

// finish waits for a staged transaction: for a logged one (already
// registered for publication), until it is durable and published; for one
// that only checked, until the state its checks saw is published.
func (s *Store) finish(idx uint64, p *segment.Pending) (uint64, error) {
	if p == nil {
		// Nothing logged: answer the published index once the state the
		// checks saw is published, so indexes a client sees never go back.
		if err := s.waitPublished(idx); err != nil {
			return 0, err
		}
		return max(idx, s.root.Load().index), nil
	}
	if err := p.Wait(); err != nil {
		return 0, s.fail(err)
	}
	return idx, s.waitPublished(idx)
}

// Put commits a single put.
func (s *Store) Put(ctx context.Context, key string, val []byte) (uint64, error) {
	return s.Commit(ctx, &Txn{Ops: []Op{{Kind: OpPut, Key: key, Value: val}}})
}

// Delete commits a single delete.
func (s *Store) Delete(ctx context.Context, key string) (uint64, error) {
	return s.Commit(ctx, &Txn{Ops: []Op{{Kind: OpDelete, Key: key}}})
}

// staging is a transaction's private view of the shards it touches.
type staging struct {
	base    []*tree // every shard's version to stage on: Store.staged, or a published root's
	shards  []int   // touched shards, ascending
	trees   []*tree // private copies, parallel to shards; nil until first write
	effects []format.TxnEffect
	byKey   map[string]int // position of each key's effect, once there are many (effectIndexFrom)
	// overlay leaves the trees alone: writes are only recorded as
	// effects, and reads see the effects first (the batch committer,
	// which writes a transaction's effects once its checks passed).
	overlay bool
}

// newStaging starts a view of txn's shards on top of base (one tree per
// shard). The caller must hold the gates of the touched shards while it
// writes through the view, whatever the base (a write copies the shard's
// tree, and Copy writes to the tree it copies), and, with Store.staged as
// base, while it reads.
func newStaging(txn *Txn, base []*tree) *staging {
	st := newOverlay(txn, base)
	st.overlay = false
	st.trees = make([]*tree, len(st.shards))
	return st
}

// newOverlay starts an overlay view of txn's shards (see staging.overlay):
// no private trees, room for an effect per operation.
func newOverlay(txn *Txn, base []*tree) *staging {
	st := &staging{base: base, shards: make([]int, 0, 4), overlay: true,
		effects: make([]format.TxnEffect, 0, len(txn.Ops))}
	for _, op := range txn.Ops {
		sh := shardOf(op.Key, len(base))
		if !slices.Contains(st.shards, sh) {
			st.shards = append(st.shards, sh)
		}
	}
	slices.Sort(st.shards)
	return st
}

// acquire takes the gates of shards in ascending order, giving up (and
// releasing what it took) when ctx is done.
func (s *Store) acquire(ctx context.Context, shards []int) error {
	if ctx.Done() == nil { // cannot be cancelled: plain sends, no select
		for _, sh := range shards {
			s.gates[sh] <- struct{}{}
		}
		return nil
	}
	for i, sh := range shards {
		select {
		case s.gates[sh] <- struct{}{}:
		case <-ctx.Done():
			s.release(shards[:i])
			return fmt.Errorf("kvtool/store: waiting for shard %d: %w", sh, ctx.Err())
		}
	}
	return nil
}

func (s *Store) release(shards []int) {
	for _, sh := range shards {
		<-s.gates[sh]
	}
}

// applyAll evaluates every operation of txn on the staging view, from a
// clean start (the batch committer may evaluate a transaction again in its
// next round), and returns the first failed check's *CheckError.
func (st *staging) applyAll(txn *Txn) error {
	st.effects, st.byKey = st.effects[:0], nil
	for i, op := range txn.Ops {
		if err := st.apply(i, op); err != nil {
			return err
		}
	}
	return nil
}

// seen returns the index of the newest entry included in the staged
// versions of shards. The caller holds their gates.
func (s *Store) seen(shards []int) uint64 {
	idx := uint64(0)
	for _, sh := range shards {
		idx = max(idx, s.lastIdx[sh])
	}
	return idx
}

// enqueueError is what a refused Enqueue means for the store. Only a failed
// log (a write or fsync error) fails the store; any other refusal, such as
// segment.ErrNoSpace (no room to prepare the next segment), assigned no
// index and wrote nothing, so the store goes on: readers keep reading, and
// commits succeed again once the log takes records.
func (s *Store) enqueueError(err error) error {
	if errors.Is(err, segment.ErrFailed) {
		return s.fail(err)
	}
	return fmt.Errorf("kvtool/store: %w", err)
}

// install makes a logged transaction's staged shard versions the shards'
// newest (later transactions stage on top of them) and returns what to
// register for publication at idx. The caller holds the gates of st.shards.
func (s *Store) install(st *staging, idx uint64) *logged {
	l := &logged{shards: st.shards, trees: st.trees}
	for i, sh := range st.shards {
		if st.trees[i] != nil {
			s.staged[sh] = st.trees[i]
			s.lastIdx[sh] = idx
		}
	}
	return l
}

// apply evaluates operation i on the staging view. A put reads nothing:
// it needs only its shard, not the key's value, whose lookup (a second
// descent of the tree beside the write's) was half the cost of applying
// a cluster's batch of puts on each member (issue 11 "Speed").
func (st *staging) apply(i int, op Op) error {
	if op.Kind == OpPut {
		_, pos := st.view(op.Key)
		st.write(pos, op.Key, append([]byte(nil), op.Value...), format.TxnPut)
		return nil
	}
	pos, curVal, ok := st.read(op.Key)
	switch op.Kind {
	case OpDelete:
		if ok {
			st.write(pos, op.Key, nil, format.TxnDelete)
		}
	case OpAdd:
		n, err := parseInt(curVal, ok)
		if err != nil {
			return &CheckError{Op: i, Key: op.Key, Reason: "add: " + err.Error()}
		}
		sum, fits := addInt(n, op.Delta)
		if !fits {
			return &CheckError{Op: i, Key: op.Key, Reason: fmt.Sprintf("add: %d + %d overflows int64", n, op.Delta)}
		}
		st.write(pos, op.Key, strconv.AppendInt(nil, sum, 10), format.TxnPut)
	case OpCheck:
		return check(i, op, curVal, ok)
	}
	return nil
}

func check(i int, op Op, val []byte, ok bool) error {
	fail := func(format string, args ...any) error {
		return &CheckError{Op: i, Key: op.Key, Reason: fmt.Sprintf(format, args...)}
	}
	switch op.Check {
	case CheckExists:
		if !ok {
			return fail("key does not exist")
		}
	case CheckAbsent:
		if ok {
			return fail("key exists")
		}
	case CheckEquals:
		if !ok || string(val) != string(op.Value) {
			return fail("value is %q, want %q", truncate(val), truncate(op.Value))
		}
	case CheckMin:
		n, err := parseInt(val, ok)
		if err != nil {
			return fail("%v", err)
		}
		if n < op.Min {
			return fail("value %d is below the minimum %d", n, op.Min)
		}
	}
	return nil
}

// read returns key's shard position in st and its value in the staging
// view.
func (st *staging) read(key string) (int, []byte, bool) {
	t, pos := st.view(key)
	if st.overlay {
		if i, ok := st.effectOf(key); ok {
			e := &st.effects[i]
			return pos, e.Value, e.Kind != format.TxnDelete
		}
	}
	pr := probe(key)
	cur, ok := t.Get(pr)
	unprobe(pr)
	if !ok {
		return pos, nil, false
	}
	return pos, cur.p.val, true
}

// view returns the tree a transaction reads key from (its private copy if
// it already wrote that shard, else the shard's newest version) and the
// shard's position in st.
func (st *staging) view(key string) (*tree, int) {
	pos := slices.Index(st.shards, shardOf(key, len(st.base)))
	if st.trees != nil && st.trees[pos] != nil {
		return st.trees[pos], pos
	}
	return st.base[st.shards[pos]], pos
}

// write records an effect, copying the shard on its first write (the
// copy-on-write step: only the paths touched later are duplicated) and
// keeping one effect per key, the last.
func (st *staging) write(pos int, key string, val []byte, kind uint8) {
	if !st.overlay {
		st.writeTree(pos, key, val, kind)
	}
	e := format.TxnEffect{Kind: kind, Key: key, Value: val}
	if i, ok := st.effectOf(key); ok {
		st.effects[i] = e
		return
	}
	if st.byKey != nil {
		st.byKey[key] = len(st.effects)
	}
	st.effects = append(st.effects, e)
}

// writeTree writes one effect into the transaction's private copy of the
// shard at pos.
func (st *staging) writeTree(pos int, key string, val []byte, kind uint8) {
	if st.trees[pos] == nil {
		st.trees[pos] = st.base[st.shards[pos]].Copy()
	}
	if kind == format.TxnDelete {
		pr := probe(key)
		st.trees[pos].Delete(pr)
		unprobe(pr)
	} else {
		st.trees[pos].Set(newItem(key, val))
	}
}

// effectIndexFrom is the number of effects from which a transaction looks
// its keys up in a map instead of scanning: the scan made a 10,000-put
// transaction take seconds (quadratic), the map would slow a transfer.
const effectIndexFrom = 16

// effectOf returns the position of key's effect, if it has one.
func (st *staging) effectOf(key string) (int, bool) {
	if st.byKey == nil && len(st.effects) >= effectIndexFrom {
		st.byKey = make(map[string]int, 2*len(st.effects))
		for i, e := range st.effects {
			st.byKey[e.Key] = i
		}
	}
	if st.byKey != nil {
		i, ok := st.byKey[key]
		return i, ok
	}
	for i := range st.effects {
		if st.effects[i].Key == key {
			return i, true
		}
	}
	return 0, false
}
