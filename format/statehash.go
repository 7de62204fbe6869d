package format

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// StateHasher computes the state hash: one canonical digest of a whole key
// space, so that two data directories hold the same state exactly when their
// hashes match, whichever path (WAL replay, checkpoint, deltas, transfer)
// built them. Feed it every live key/value pair in ascending key order; each
// pair is hashed as keyLen u64 | key | valueLen u64 | value (little-endian),
// so no two different states can produce the same byte stream.
type StateHasher struct {
	d   *xxhash.Digest
	buf [8]byte
	// pair holds a small pair's whole encoding, written to d at once:
	// four Writes of a few bytes each cost more than the hashing itself
	// (a joining member's verification of a received checkpoint spent a
	// sixth of its time here).
	pair []byte
}

// smallPair bounds the pairs Add encodes into one buffer; a larger one
// is written in place, piece by piece.
const smallPair = 1024

// NewStateHasher returns a hasher for an empty state.
func NewStateHasher() *StateHasher { return &StateHasher{d: xxhash.New()} }

// Add adds the next pair; keys must come in ascending order.
func (h *StateHasher) Add(key, value []byte) {
	if len(key)+len(value) <= smallPair {
		h.pair = appendPair(h.pair[:0], key, value)
		h.d.Write(h.pair)
		return
	}
	h.addLen(len(key))
	h.d.Write(key)
	h.addLen(len(value))
	h.d.Write(value)
}

// AddString is Add for a string key, without a copy.
func (h *StateHasher) AddString(key string, value []byte) {
	if len(key)+len(value) <= smallPair {
		h.pair = appendPair(h.pair[:0], key, value)
		h.d.Write(h.pair)
		return
	}
	h.addLen(len(key))
	h.d.WriteString(key)
	h.addLen(len(value))
	h.d.Write(value)
}

// AddTombstone adds a deleted key, hashed as keyLen u64 | key | 2^64-1:
// no value is that long, so a tombstone never hashes like a pair. A state
// has no tombstones; a digest of changes (a delta's entries, see package
// table) does.
func (h *StateHasher) AddTombstone(key []byte) {
	h.addLen(len(key))
	h.d.Write(key)
	h.addUint64(tombstoneLen)
}

// appendPair appends the encoding of a pair as the state hash hashes it.
func appendPair[K string | []byte](b []byte, key K, value []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	return append(b, value...)
}

// tombstoneLen stands for the value length of a tombstone.
const tombstoneLen = ^uint64(0)

func (h *StateHasher) addLen(n int) { h.addUint64(uint64(n)) }

func (h *StateHasher) addUint64(v uint64) {
	binary.LittleEndian.PutUint64(h.buf[:], v)
	h.d.Write(h.buf[:])
}

// Sum64 returns the hash of the pairs added so far.
func (h *StateHasher) Sum64() uint64 { return h.d.Sum64() }

// FormatStateHash prints a state hash the one way kvtool shows it: 16 hex
// digits.
func FormatStateHash(h uint64) string { return fmt.Sprintf("%016x", h) }
