package format

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// TestStateHasherStream: the state hash is xxh64 of the documented byte
// stream (keyLen u64 | key | valueLen u64 | value per pair, a tombstone's
// value length 2^64-1), whichever way StateHasher writes a pair (small
// pairs encoded whole, large ones piece by piece) and whether the key is
// given as bytes or as a string.
func TestStateHasherStream(t *testing.T) {
	big := bytes.Repeat([]byte("v"), smallPair)
	pairs := []struct{ k, v []byte }{
		{[]byte("a"), []byte("1")},
		{[]byte("b"), nil},
		{[]byte("c"), big[:smallPair-1]}, // exactly smallPair with its key
		{[]byte("d"), big},               // one byte over
		{[]byte("e"), []byte("short again")},
		{bytes.Repeat([]byte("f"), 3*smallPair), []byte("x")},
	}
	var stream []byte
	u64 := func(v uint64) { stream = binary.LittleEndian.AppendUint64(stream, v) }
	h, hs := NewStateHasher(), NewStateHasher()
	for _, p := range pairs {
		u64(uint64(len(p.k)))
		stream = append(stream, p.k...)
		u64(uint64(len(p.v)))
		stream = append(stream, p.v...)
		h.Add(p.k, p.v)
		hs.AddString(string(p.k), p.v)
	}
	u64(1)
	stream = append(stream, 'g')
	u64(^uint64(0))
	h.AddTombstone([]byte("g"))
	hs.AddTombstone([]byte("g"))
	want := xxhash.Sum64(stream)
	if got := h.Sum64(); got != want {
		t.Errorf("Add: %016x, want %016x", got, want)
	}
	if got := hs.Sum64(); got != want {
		t.Errorf("AddString: %016x, want %016x", got, want)
	}
}
