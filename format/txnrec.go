package format

import (
	"encoding/binary"
	"fmt"
)

// A WAL transaction record (the data of a FrameWALTxn entry) holds the
// effects of one committed transaction: the final put or delete of every key
// it changed, in key order of first touch, each key once. Checks and adds are
// resolved before logging, so replay applies effects without re-evaluating
// anything, and applying a record twice changes nothing (idempotent).
//
//	+----------------+-------------------------------------------------+
//	| count uvarint  | count x ( kind u8 | keyLen uvarint | key |       |
//	|                |           [valLen uvarint | value] if put )     |
//	+----------------+-------------------------------------------------+
//
// The kinds are part of the format and never change.
const (
	TxnPut    uint8 = 1
	TxnDelete uint8 = 2
)

// Limits on transaction contents, checked by writers and by decoders.
const (
	MaxKeySize   = 4 << 10  // bytes in a key
	MaxValueSize = 1 << 20  // bytes in a value
	MaxTxnOps    = 64 << 10 // effects in one transaction
)

// TxnEffect is one effect of a committed transaction.
type TxnEffect struct {
	Kind  uint8 // TxnPut or TxnDelete
	Key   string
	Value []byte // nil for TxnDelete
}

// AppendTxnRecord appends the encoding of effects to dst.
func AppendTxnRecord(dst []byte, effects []TxnEffect) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(effects)))
	for _, e := range effects {
		dst = append(dst, e.Kind)
		dst = binary.AppendUvarint(dst, uint64(len(e.Key)))
		dst = append(dst, e.Key...)
		if e.Kind == TxnPut {
			dst = binary.AppendUvarint(dst, uint64(len(e.Value)))
			dst = append(dst, e.Value...)
		}
	}
	return dst
}

// TxnRecordSize returns the encoded size of effects, so a writer can reserve
// space once.
func TxnRecordSize(effects []TxnEffect) int {
	var scratch [binary.MaxVarintLen64]byte
	size := func(n int) int { return binary.PutUvarint(scratch[:], uint64(n)) }
	n := size(len(effects))
	for _, e := range effects {
		n += 1 + size(len(e.Key)) + len(e.Key)
		if e.Kind == TxnPut {
			n += size(len(e.Value)) + len(e.Value)
		}
	}
	return n
}

// DecodeTxnRecord calls fn for every effect in a transaction record, in
// order. The key and value slices alias b and are valid only during the
// call. A malformed record is an error describing what is wrong (the caller
// wraps it with the file and offset of its frame).
func DecodeTxnRecord(b []byte, fn func(kind uint8, key, value []byte)) error {
	count, n := uvarint(b)
	if n <= 0 || count > MaxTxnOps {
		return fmt.Errorf("bad effect count")
	}
	b = b[n:]
	for i := uint64(0); i < count; i++ {
		if len(b) == 0 {
			return fmt.Errorf("record ends in effect %d of %d", i, count)
		}
		kind := b[0]
		key, rest, err := takeBytes(b[1:], MaxKeySize)
		if err != nil {
			return fmt.Errorf("effect %d key: %v", i, err)
		}
		var value []byte
		switch kind {
		case TxnPut:
			if value, rest, err = takeBytes(rest, MaxValueSize); err != nil {
				return fmt.Errorf("effect %d value: %v", i, err)
			}
		case TxnDelete:
		default:
			return fmt.Errorf("effect %d: unknown kind %d", i, kind)
		}
		fn(kind, key, value)
		b = rest
	}
	if len(b) != 0 {
		return fmt.Errorf("%d trailing bytes after %d effects", len(b), count)
	}
	return nil
}

// takeBytes splits a uvarint-length-prefixed byte string off b.
func takeBytes(b []byte, limit int) (s, rest []byte, err error) {
	l, n := uvarint(b)
	if n <= 0 {
		return nil, nil, fmt.Errorf("bad length")
	}
	if l > uint64(limit) || l > uint64(len(b)-n) {
		return nil, nil, fmt.Errorf("length %d exceeds limit or record", l)
	}
	return b[n : n+int(l)], b[n+int(l):], nil
}

// uvarint is binary.Uvarint that also rejects non-minimal encodings (such
// as 0x80 0x00 for 0), so every record has exactly one encoding.
func uvarint(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n > 1 && b[n-1] == 0 {
		return 0, -1
	}
	return v, n
}
