package query

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/tidwall/btree"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/replay"
	"github.com/kvtool/kvtool/store"
)

// kvState is a sorted key space that kv and kv_at read: a live store's
// snapshot, or a state rebuilt from the data directory's files.
type kvState interface {
	Get(key string) ([]byte, bool)
	Iter() kvIter
	Len() int
}

// kvIter walks a kvState in key order, forward after SeekGE and backward
// after SeekLT or Last (the shape of store.Iter).
type kvIter interface {
	SeekGE(key string) bool
	SeekLT(key string) bool
	Last() bool
	Next() bool
	Key() string
	Value() []byte
	Release()
}

// snapState is a live store's snapshot.
type snapState struct{ s *store.Snapshot }

func (st snapState) Get(key string) ([]byte, bool) { return st.s.Get(key) }
func (st snapState) Iter() kvIter                  { return st.s.Iter() }
func (st snapState) Len() int                      { return st.s.Len() }

// memState is a state rebuilt in memory by replay: a replay.Target.
type memState struct{ m btree.Map[string, []byte] }

// Apply applies one effect of a replayed entry (key and value are only
// valid during the call).
func (st *memState) Apply(kind uint8, key, value []byte) {
	if kind == format.TxnDelete {
		st.m.Delete(string(key))
		return
	}
	st.m.Set(string(key), bytes.Clone(value))
}

func (st *memState) Get(key string) ([]byte, bool) { return st.m.Get(key) }
func (st *memState) Iter() kvIter                  { return &memIter{it: st.m.Iter()} }
func (st *memState) Len() int                      { return st.m.Len() }

// memIter adapts btree.MapIter to kvIter.
type memIter struct {
	it   btree.MapIter[string, []byte]
	desc bool
}

func (it *memIter) SeekGE(key string) bool {
	it.desc = false
	return it.it.Seek(key)
}

func (it *memIter) SeekLT(key string) bool {
	it.desc = true
	if it.it.Seek(key) {
		return it.it.Prev()
	}
	return it.it.Last()
}

func (it *memIter) Last() bool {
	it.desc = true
	return it.it.Last()
}

func (it *memIter) Next() bool {
	if it.desc {
		return it.it.Prev()
	}
	return it.it.Next()
}

func (it *memIter) Key() string   { return it.it.Key() }
func (it *memIter) Value() []byte { return it.it.Value() }
func (it *memIter) Release()      {}

// liveState is the state kv reads: the Source's snapshot, or the state
// rebuilt from the directory's files the first time a query asks.
func (s *Session) liveState() (kvState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live != nil {
		return s.live, nil
	}
	st := &memState{}
	res, err := replay.Dir(s.src.FS, s.src.Dir, replay.Options{StopAtTornTail: true}, st)
	if err != nil {
		return nil, fmt.Errorf("kvtool/query: rebuild the state of %s: %w", s.src.Dir, err)
	}
	s.live, s.liveAt = st, res.AppliedIndex
	return st, nil
}

// stateAt is the state at log index n, rebuilt as `kvtool replay
// --to-index n` does; states are kept for the session's life, so a query
// that reads kv_at(n) many times rebuilds it once.
func (s *Session) stateAt(n uint64) (kvState, error) {
	if n == 0 {
		return nil, errors.New("kv_at(0): log indexes start at 1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.states[n]; ok {
		return st, nil
	}
	st := &memState{}
	_, err := replay.Dir(s.src.FS, s.src.Dir, replay.Options{ToIndex: n, StopAtTornTail: true}, st)
	if err != nil {
		return nil, s.notCovered(n, err)
	}
	s.states[n] = st
	return st, nil
}

// notCovered explains a failed rebuild at n; an index the files do not
// cover names the ones they do.
func (s *Session) notCovered(n uint64, err error) error {
	if !errors.Is(err, replay.ErrNotCovered) && !errors.Is(err, replay.ErrGap) {
		return fmt.Errorf("kv_at(%d): rebuild the state of %s: %w", n, s.src.Dir, err)
	}
	rs, cerr := datadir.Covered(s.src.FS, s.src.Dir)
	if cerr != nil {
		return fmt.Errorf("kv_at(%d): %w", n, err)
	}
	return &notCoveredError{fmt.Sprintf("kv_at(%d): index %d is not covered by the retained files of %s; they cover %s", n, n, s.src.Dir, datadir.RangesText(rs))}
}

// notCoveredError is an index the files do not cover; it matches
// replay.ErrNotCovered.
type notCoveredError struct{ msg string }

func (e *notCoveredError) Error() string { return e.msg }
func (e *notCoveredError) Unwrap() error { return replay.ErrNotCovered }
