package table

import "github.com/kvtool/kvtool/format"

// entryHasher computes a table's footer hash with format.StateHasher: a
// put is hashed as a pair, so a table of puts only carries the state hash
// of its pairs, and a tombstone as StateHasher.AddTombstone hashes it.
type entryHasher struct{ *format.StateHasher }

func newEntryHasher() *entryHasher { return &entryHasher{format.NewStateHasher()} }

func (h *entryHasher) add(key, value []byte, kind format.EntryKind) {
	if kind == format.EntryDelete {
		h.AddTombstone(key)
		return
	}
	h.Add(key, value)
}

func (h *entryHasher) sum() uint64 { return h.Sum64() }
