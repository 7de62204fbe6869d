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
// It follows DESIGN.md "Transactions and shards": take the touched shards'
// gates in ascending order (ctx may give up while waiting), stage private
// copy-on-write versions of those shards and evaluate every operation on
// them, and on a failed check drop them (returning a *CheckError; nothing is
// logged). Otherwise log one WAL record and — still under the gates, so that
// log order matches staging order on every shard — make the staged versions
// the shards' newest, then release the gates. A later transaction on the
// same shard may stage on top of this one before it is durable; nothing is
// published or acknowledged before it is. The WAL's flusher publishes
// durable entries in index order (onDurable); Commit returns once its entry
// is published.
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
	st := newStaging(txn, len(s.gates))
	if err := s.acquire(ctx, st.shards); err != nil {
		return 0, err
	}
	idx, p, l, err := s.stageAndLog(txn, st)
	s.release(st.shards)
	if err != nil {
		return 0, err
	}
	if p == nil {
		// Nothing logged: answer the published index once the state the
		// checks saw is published, so indexes a client sees never go back.
		if err := s.waitPublished(idx); err != nil {
			return 0, err
		}
		return max(idx, s.root.Load().index), nil
	}
	// Queued for publication only now, outside the gates: pubMu is shared
	// with the publisher, and holding it under the gates would stretch
	// every gate's hold time. Publication waits for late registrations.
	s.register(idx, l)
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
	shards  []int   // touched shards, ascending
	trees   []*tree // private copies, parallel to shards; nil until first write
	effects []format.TxnEffect
}

func newStaging(txn *Txn, nshards int) *staging {
	st := &staging{shards: make([]int, 0, 4)}
	for _, op := range txn.Ops {
		sh := shardOf(op.Key, nshards)
		if !slices.Contains(st.shards, sh) {
			st.shards = append(st.shards, sh)
		}
	}
	slices.Sort(st.shards)
	st.trees = make([]*tree, len(st.shards))
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

// stageAndLog runs with the gates of st.shards held and returns the
// transaction's pending WAL write and what the caller must register for
// publication. It returns a nil Pending for a transaction that changed
// nothing (only checks): then idx is the index of the state its checks saw,
// which the caller waits to see published.
func (s *Store) stageAndLog(txn *Txn, st *staging) (uint64, *segment.Pending, *logged, error) {
	for i, op := range txn.Ops {
		if err := s.apply(st, i, op); err != nil {
			return 0, nil, nil, err
		}
	}
	if len(st.effects) == 0 {
		seen := uint64(0)
		for _, sh := range st.shards {
			seen = max(seen, s.lastIdx[sh])
		}
		return seen, nil, nil, nil
	}
	rec := format.AppendTxnRecord(make([]byte, 0, format.TxnRecordSize(st.effects)), st.effects)
	p, err := s.log.Enqueue(format.FrameWALTxn, rec)
	if err != nil {
		return 0, nil, nil, s.enqueueError(err)
	}
	return p.Index(), p, s.install(st, p.Index()), nil
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
	l := &logged{shards: st.shards, trees: st.trees, keys: make([]string, len(st.effects))}
	for i, e := range st.effects {
		l.keys[i] = e.Key
	}
	for i, sh := range st.shards {
		if st.trees[i] != nil {
			s.staged[sh] = st.trees[i]
			s.lastIdx[sh] = idx
		}
	}
	return l
}

// apply evaluates operation i on the staging view.
func (s *Store) apply(st *staging, i int, op Op) error {
	t, pos := st.view(s, op.Key)
	pr := probe(op.Key)
	cur, ok := t.Get(pr)
	unprobe(pr)
	var curVal []byte
	if ok {
		curVal = cur.p.val
	}
	switch op.Kind {
	case OpPut:
		st.write(s, pos, op.Key, append([]byte(nil), op.Value...), format.TxnPut)
	case OpDelete:
		if ok {
			st.write(s, pos, op.Key, nil, format.TxnDelete)
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
		st.write(s, pos, op.Key, strconv.AppendInt(nil, sum, 10), format.TxnPut)
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

// view returns the tree a transaction reads key from (its private copy if
// it already wrote that shard, else the shard's newest version) and the
// shard's position in st.
func (st *staging) view(s *Store, key string) (*tree, int) {
	pos := slices.Index(st.shards, shardOf(key, len(s.gates)))
	if t := st.trees[pos]; t != nil {
		return t, pos
	}
	return s.staged[st.shards[pos]], pos
}

// write records an effect, copying the shard on its first write (the
// copy-on-write step: only the paths touched later are duplicated) and
// keeping one effect per key, the last.
func (st *staging) write(s *Store, pos int, key string, val []byte, kind uint8) {
	if st.trees[pos] == nil {
		st.trees[pos] = s.staged[st.shards[pos]].Copy()
	}
	if kind == format.TxnDelete {
		pr := probe(key)
		st.trees[pos].Delete(pr)
		unprobe(pr)
	} else {
		st.trees[pos].Set(newItem(key, val))
	}
	e := format.TxnEffect{Kind: kind, Key: key, Value: val}
	for i := range st.effects {
		if st.effects[i].Key == key {
			st.effects[i] = e
			return
		}
	}
	st.effects = append(st.effects, e)
}
