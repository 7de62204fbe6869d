package delta

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// ErrNothingToMerge is returned by Merge without deltas.
var ErrNothingToMerge = errors.New("kvtool/delta: no deltas to merge")

// MergeOptions tunes Merge.
type MergeOptions struct {
	Options // for the checkpoint written
	// Shards is recorded in the new checkpoint when there is no base;
	// otherwise the base's shard count is kept.
	Shards int
}

// Merge folds the base checkpoint at path base ("" for the empty state at
// 0) and the deltas at paths deltas (oldest first) into a new checkpoint at
// the last delta's To index, written to dir/format.CheckpointName(to) and
// published durably; the inputs are not changed. The chain is checked
// first (CheckLinks). The merge streams: for each key the newest entry
// wins and a tombstone drops the key, so memory is one block per input
// plus the output block and index, whatever the size of the state.
func Merge(fs vfs.FS, dir, base string, deltas []string, opts MergeOptions) (checkpoint.Info, error) {
	if len(deltas) == 0 {
		return checkpoint.Info{}, ErrNothingToMerge
	}
	in, err := openInputs(fs, base, deltas)
	if err != nil {
		return checkpoint.Info{}, err
	}
	defer in.close()
	if err := in.checkChain(); err != nil {
		return checkpoint.Info{}, err
	}
	meta := in.target(opts.Shards)
	w, err := checkpoint.NewWriter(fs, filepath.Join(dir, format.CheckpointName(meta.Index)), meta, opts.Options)
	if err != nil {
		return checkpoint.Info{}, err
	}
	if err := in.merge(w); err != nil {
		w.Cancel()
		return checkpoint.Info{}, err
	}
	return w.Close()
}

// inputs are the open files of a merge, oldest first.
type inputs struct {
	base   *checkpoint.Reader // nil for the empty state
	deltas []*Reader
}

func openInputs(fs vfs.FS, base string, deltas []string) (*inputs, error) {
	in := &inputs{}
	if base != "" {
		r, err := checkpoint.Open(fs, base)
		if err != nil {
			return nil, err
		}
		in.base = r
	}
	for _, p := range deltas {
		r, err := Open(fs, p)
		if err != nil {
			in.close()
			return nil, err
		}
		in.deltas = append(in.deltas, r)
	}
	return in, nil
}

func (in *inputs) close() {
	if in.base != nil {
		in.base.Close()
	}
	for _, r := range in.deltas {
		r.Close()
	}
}

func (in *inputs) checkChain() error {
	var bl *Link
	if in.base != nil {
		l := BaseLink(in.base.Info().Name, in.base.Meta())
		bl = &l
	}
	links := make([]Link, len(in.deltas))
	for i, r := range in.deltas {
		links[i] = LinkOf(r.Info().Name, r.Meta())
	}
	return CheckLinks(bl, links)
}

// target is the Meta of the merged checkpoint.
func (in *inputs) target(shards int) checkpoint.Meta {
	last := in.deltas[len(in.deltas)-1].Meta()
	if in.base != nil {
		shards = in.base.Meta().Shards
	}
	return checkpoint.Meta{StoreID: last.StoreID, Index: last.To, Term: last.Term, Shards: shards}
}

// merge streams the merged state into w.
func (in *inputs) merge(w *checkpoint.Writer) error {
	var m merger
	if in.base != nil {
		if err := m.push(in.base.NewIter(nil, nil), 0); err != nil {
			return err
		}
	}
	for i, r := range in.deltas {
		if err := m.push(r.NewIter(nil, nil), i+1); err != nil {
			return err
		}
	}
	defer m.close()
	return m.run(func(key, value []byte, kind format.EntryKind) error {
		if kind == format.EntryDelete {
			return nil
		}
		return w.Add(key, value)
	})
}

// merger is a k-way merge of sorted tables: a heap of iterators ordered by
// their current key, newest input first among equal keys.
type merger struct {
	h   []mergeInput
	key []byte // the key being emitted
}

type mergeInput struct {
	it   *table.Iter
	prio int // higher is newer
}

func (m *merger) Len() int { return len(m.h) }
func (m *merger) Less(i, j int) bool {
	if c := bytes.Compare(m.h[i].it.Key(), m.h[j].it.Key()); c != 0 {
		return c < 0
	}
	return m.h[i].prio > m.h[j].prio
}
func (m *merger) Swap(i, j int) { m.h[i], m.h[j] = m.h[j], m.h[i] }
func (m *merger) Push(x any)    { m.h = append(m.h, x.(mergeInput)) }
func (m *merger) Pop() any {
	x := m.h[len(m.h)-1]
	m.h = m.h[:len(m.h)-1]
	return x
}

// push adds an input positioned on its first entry (or closes it if empty).
func (m *merger) push(it *table.Iter, prio int) error {
	if !it.Next() {
		return it.Close()
	}
	heap.Push(m, mergeInput{it, prio})
	return nil
}

// run calls emit once per distinct key, in ascending order, with the
// newest input's entry, until the inputs are exhausted or emit fails.
func (m *merger) run(emit func(key, value []byte, kind format.EntryKind) error) error {
	for len(m.h) > 0 {
		top := m.h[0].it
		m.key = append(m.key[:0], top.Key()...)
		if err := emit(top.Key(), top.Value(), top.Kind()); err != nil {
			return err
		}
		for len(m.h) > 0 && bytes.Equal(m.h[0].it.Key(), m.key) {
			if err := m.advance(); err != nil {
				return err
			}
		}
	}
	return nil
}

// advance moves the top input to its next entry, dropping it at its end.
func (m *merger) advance() error {
	if m.h[0].it.Next() {
		heap.Fix(m, 0)
		return nil
	}
	it := heap.Pop(m).(mergeInput).it
	if err := it.Close(); err != nil {
		return fmt.Errorf("kvtool/delta: merge: %w", err)
	}
	return nil
}

func (m *merger) close() {
	for _, in := range m.h {
		in.it.Close()
	}
}
