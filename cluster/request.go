package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/store"
)

// A client request travels in a raft entry (a FrameWALRaft record) as the
// operations to evaluate at apply time, so every node decides its checks
// against the same committed state. Little-endian; part of the format:
//
//	+--------------+----------+-----------+--------+-----------------+-----------------+
//	| version u8=1 | flags u8 | idLen u8  | id     | count uvarint   | count x op      |
//	+--------------+----------+-----------+--------+-----------------+-----------------+
//	  flags bit 0: the ID is the client's (deduplicate: apply at most once)
//	  flags bit 1: an attempt u64 follows the id: the Propose call that
//	               proposed it, so a call can tell its own proposal from an
//	               earlier call's with the same ID (Result.Duplicate)
//	  op: kind u8 | keyLen uvarint | key | then by kind:
//	      put: valLen uvarint | value     add: delta zigzag varint
//	      del: nothing                    check: check u8 | equals: valLen | value
//	                                                     | min: zigzag varint
//
// Integrity comes from the WAL record's checksum and the peer transport's
// authentication; decoding still bounds every length, so a malformed entry
// is an error, never a panic or a huge allocation.
const requestVersion = 1

const (
	flagDedup   = 1
	flagAttempt = 2
)

// MaxRequestID bounds a request ID, in bytes.
const MaxRequestID = 64

// errBadRequest is wrapped by decodeRequest.
var errBadRequest = errors.New("kvtool/cluster: malformed request entry")

// request is a decoded request entry.
type request struct {
	id      string
	dedup   bool   // id is the client's: apply at most once
	attempt uint64 // the Propose call that proposed it (0: none said)
	txn     *store.Txn
}

// encodeRequest encodes r; r.txn must be valid (store.Txn.Validate) and
// r.id at most MaxRequestID bytes.
func encodeRequest(r *request) []byte {
	return appendRequest(make([]byte, 0, requestSize(r)), r)
}

// appendRequest appends r's encoding to b. Its callers size b with
// requestSize first: growing the encoding op by op reallocated it five
// times for a put, on the path of every write.
func appendRequest(b []byte, r *request) []byte {
	flags := byte(0)
	if r.dedup {
		flags |= flagDedup
	}
	if r.attempt != 0 {
		flags |= flagAttempt
	}
	b = append(b, requestVersion, flags, byte(len(r.id)))
	b = append(b, r.id...)
	if r.attempt != 0 {
		b = binary.LittleEndian.AppendUint64(b, r.attempt)
	}
	b = binary.AppendUvarint(b, uint64(len(r.txn.Ops)))
	for _, op := range r.txn.Ops {
		b = appendOp(b, op)
	}
	return b
}

// requestSize is the length of r's encoding.
func requestSize(r *request) int {
	n := 3 + len(r.id) + uvarintLen(uint64(len(r.txn.Ops)))
	if r.attempt != 0 {
		n += 8
	}
	for _, op := range r.txn.Ops {
		n += 1 + bytesSize(len(op.Key))
		switch op.Kind {
		case store.OpPut:
			n += bytesSize(len(op.Value))
		case store.OpAdd:
			n += varintLen(op.Delta)
		case store.OpCheck:
			n++
			switch op.Check {
			case store.CheckEquals:
				n += bytesSize(len(op.Value))
			case store.CheckMin:
				n += varintLen(op.Min)
			}
		}
	}
	return n
}

// bytesSize is the length of appendBytes' encoding of n bytes.
func bytesSize(n int) int { return uvarintLen(uint64(n)) + n }

// uvarintLen is the length of binary.AppendUvarint's encoding of v.
func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// varintLen is the length of binary.AppendVarint's encoding of v.
func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}

func appendOp(b []byte, op store.Op) []byte {
	b = append(b, byte(op.Kind))
	b = appendBytes(b, []byte(op.Key))
	switch op.Kind {
	case store.OpPut:
		b = appendBytes(b, op.Value)
	case store.OpAdd:
		b = binary.AppendVarint(b, op.Delta)
	case store.OpCheck:
		b = append(b, byte(op.Check))
		switch op.Check {
		case store.CheckEquals:
			b = appendBytes(b, op.Value)
		case store.CheckMin:
			b = binary.AppendVarint(b, op.Min)
		}
	}
	return b
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// decodedRequest holds a decoded request, its transaction and, for the
// usual request of one operation, that operation in one allocation: every
// member decodes every request it applies (decodeBatch), and the three
// allocations a request took were a tenth of a cluster put's.
type decodedRequest struct {
	r   request
	txn store.Txn
	op  [1]store.Op
}

// decodeRequest decodes a request entry. The result does not alias b.
func decodeRequest(b []byte) (*request, error) {
	d := &reqDecoder{b: b}
	a := &decodedRequest{}
	r := &a.r
	head := d.take(3)
	if head == nil {
		return nil, d.fail("entry of %d bytes is too short", len(b))
	}
	if head[0] != requestVersion || head[1]&^(flagDedup|flagAttempt) != 0 || head[2] > MaxRequestID {
		return nil, d.fail("version %d, flags %#x, id length %d", head[0], head[1], head[2])
	}
	r.dedup = head[1]&flagDedup != 0
	r.id = string(d.take(int(head[2])))
	if head[1]&flagAttempt != 0 {
		if a := d.take(8); a != nil {
			r.attempt = binary.LittleEndian.Uint64(a)
		}
	}
	n := d.uvarint()
	if n > format.MaxTxnOps {
		return nil, d.fail("%d operations, the limit is %d", n, format.MaxTxnOps)
	}
	r.txn = &a.txn
	if n <= 1 {
		r.txn.Ops = a.op[:0:1]
	} else {
		r.txn.Ops = make([]store.Op, 0, min(n, 1024))
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		r.txn.Ops = append(r.txn.Ops, d.op())
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the last operation", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

// reqDecoder reads a request; the first error is sticky.
type reqDecoder struct {
	b   []byte
	err error
}

func (d *reqDecoder) fail(f string, args ...any) error {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(f, args...))
	}
	return d.err
}

func (d *reqDecoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("ends early (want %d more bytes, %d left)", n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *reqDecoder) byte1() byte {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *reqDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad length")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *reqDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a length-prefixed byte string of at most limit bytes, copied.
func (d *reqDecoder) bytes(limit int) []byte {
	n := d.uvarint()
	if n > uint64(limit) {
		d.fail("length %d exceeds the limit %d", n, limit)
		return nil
	}
	return append([]byte{}, d.take(int(n))...)
}

// str reads a length-prefixed string of at most limit bytes (one copy,
// where string(d.bytes(limit)) made two).
func (d *reqDecoder) str(limit int) string {
	n := d.uvarint()
	if n > uint64(limit) {
		d.fail("length %d exceeds the limit %d", n, limit)
		return ""
	}
	return string(d.take(int(n)))
}

func (d *reqDecoder) op() store.Op {
	op := store.Op{Kind: store.OpKind(d.byte1())}
	op.Key = d.str(format.MaxKeySize)
	switch op.Kind {
	case store.OpPut:
		op.Value = d.bytes(format.MaxValueSize)
	case store.OpDelete:
	case store.OpAdd:
		op.Delta = d.varint()
	case store.OpCheck:
		op.Check = store.CheckKind(d.byte1())
		switch op.Check {
		case store.CheckEquals:
			op.Value = d.bytes(format.MaxValueSize)
		case store.CheckMin:
			op.Min = d.varint()
		case store.CheckExists, store.CheckAbsent:
		default:
			d.fail("unknown check kind %d", op.Check)
		}
	default:
		d.fail("unknown operation kind %d", op.Kind)
	}
	return op
}
