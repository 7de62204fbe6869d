package table

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
	"github.com/kvtool/kvtool/format"
)

// tombstoneLen stands for the value length of a tombstone in a table's
// hash: no value can be that long, so a tombstone never hashes like a put.
const tombstoneLen = ^uint64(0)

// entryHasher computes a table's footer hash. A put is hashed exactly as
// format.StateHasher hashes a pair (keyLen u64 | key | valueLen u64 |
// value), so a table of puts only carries the state hash of its pairs; a
// tombstone is hashed as keyLen u64 | key | tombstoneLen.
type entryHasher struct {
	d   *xxhash.Digest
	buf [8]byte
}

func newEntryHasher() *entryHasher { return &entryHasher{d: xxhash.New()} }

func (h *entryHasher) add(key, value []byte, kind format.EntryKind) {
	h.addLen(uint64(len(key)))
	h.d.Write(key)
	if kind == format.EntryDelete {
		h.addLen(tombstoneLen)
		return
	}
	h.addLen(uint64(len(value)))
	h.d.Write(value)
}

func (h *entryHasher) addLen(n uint64) {
	binary.LittleEndian.PutUint64(h.buf[:], n)
	h.d.Write(h.buf[:])
}

func (h *entryHasher) sum() uint64 { return h.d.Sum64() }
