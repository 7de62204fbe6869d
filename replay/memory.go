package replay

import (
	"github.com/tidwall/btree"

	"github.com/kvtool/kvtool/format"
)

// Memory is a Target that holds the rebuilt state in memory, in key order:
// `kvtool replay` uses it to print the state hash and to write the state as
// a checkpoint.
type Memory struct {
	m *btree.Map[string, []byte]
}

// NewMemory returns an empty state.
func NewMemory() *Memory { return &Memory{m: new(btree.Map[string, []byte])} }

// Apply applies one effect.
func (m *Memory) Apply(kind uint8, key, value []byte) {
	if kind == format.TxnDelete {
		m.m.Delete(string(key))
		return
	}
	m.m.Set(string(key), append([]byte(nil), value...))
}

// Len returns the number of keys.
func (m *Memory) Len() int { return m.m.Len() }

// Get returns the value of key.
func (m *Memory) Get(key string) ([]byte, bool) { return m.m.Get(key) }

// Ascend calls fn for every pair in key order until fn returns false.
func (m *Memory) Ascend(fn func(key string, value []byte) bool) { m.m.Scan(fn) }

// Hash returns the state hash (format.StateHasher).
func (m *Memory) Hash() uint64 {
	h := format.NewStateHasher()
	m.Ascend(func(k string, v []byte) bool {
		h.AddString(k, v)
		return true
	})
	return h.Sum64()
}
