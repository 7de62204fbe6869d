package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/kvtool/kvtool/format"
)

// OpKind is what an operation does.
type OpKind uint8

// Operation kinds.
const (
	OpPut    OpKind = iota + 1 // set Key to Value
	OpDelete                   // remove Key
	OpAdd                      // add Delta to the decimal integer at Key (missing = 0)
	OpCheck                    // abort the transaction unless Check holds for Key
)

// CheckKind is what an OpCheck requires.
type CheckKind uint8

// Check kinds.
const (
	CheckExists CheckKind = iota + 1 // Key is present
	CheckAbsent                      // Key is absent
	CheckEquals                      // Key's value equals Value
	CheckMin                         // Key holds a decimal integer >= Min (missing = 0)
)

// Op is one operation of a transaction.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte    // OpPut; OpCheck with CheckEquals
	Delta int64     // OpAdd
	Check CheckKind // OpCheck
	Min   int64     // OpCheck with CheckMin
}

// Txn is a transaction: operations applied in order to the transaction's
// private view of the state; a check sees the effect of the operations before
// it. All or nothing.
type Txn struct {
	Ops []Op
}

// MaxTxnBytes bounds the encoded size of one transaction's effects.
const MaxTxnBytes = 16 << 20

var (
	// ErrCheckFailed is matched by every *CheckError: the transaction was
	// aborted by its own operations and nothing changed.
	ErrCheckFailed = errors.New("kvtool/store: transaction check failed")
	// ErrInvalid is returned (wrapped) for a transaction that can never
	// commit: an empty key, a key or value over the limits, too many ops.
	ErrInvalid = errors.New("kvtool/store: invalid transaction")
)

// CheckError says which operation aborted a transaction and why.
type CheckError struct {
	Op     int    // index of the operation in Txn.Ops
	Key    string // its key
	Reason string
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("transaction aborted at op %d (key %q): %s; nothing changed", e.Op, e.Key, e.Reason)
}

// Is makes errors.Is(err, ErrCheckFailed) true.
func (e *CheckError) Is(target error) bool { return target == ErrCheckFailed }

// Validate checks what can be checked without the state.
func (t *Txn) Validate() error {
	if len(t.Ops) == 0 {
		return fmt.Errorf("%w: no operations", ErrInvalid)
	}
	if len(t.Ops) > format.MaxTxnOps {
		return fmt.Errorf("%w: %d operations, limit %d", ErrInvalid, len(t.Ops), format.MaxTxnOps)
	}
	total := 0
	for i, op := range t.Ops {
		if err := op.validate(); err != nil {
			return fmt.Errorf("%w: op %d: %v", ErrInvalid, i, err)
		}
		total += len(op.Key) + len(op.Value)
	}
	if total > MaxTxnBytes {
		return fmt.Errorf("%w: %d bytes of keys and values, limit %d", ErrInvalid, total, MaxTxnBytes)
	}
	return nil
}

func (op *Op) validate() error {
	switch {
	case op.Key == "":
		return errors.New("empty key")
	case len(op.Key) > format.MaxKeySize:
		return fmt.Errorf("key of %d bytes, limit %d", len(op.Key), format.MaxKeySize)
	case len(op.Value) > format.MaxValueSize:
		return fmt.Errorf("value of %d bytes, limit %d", len(op.Value), format.MaxValueSize)
	}
	switch op.Kind {
	case OpPut, OpDelete, OpAdd:
		return nil
	case OpCheck:
		if op.Check < CheckExists || op.Check > CheckMin {
			return fmt.Errorf("unknown check kind %d", op.Check)
		}
		return nil
	}
	return fmt.Errorf("unknown op kind %d", op.Kind)
}

// jsonOp is the wire form of an Op (DESIGN.md "Transaction JSON").
type jsonOp struct {
	Op          string  `json:"op"`
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
	Delta       *int64  `json:"delta,omitempty"`
	Exists      *bool   `json:"exists,omitempty"`
	Equals      *string `json:"equals,omitempty"`
	Min         *int64  `json:"min,omitempty"`
}

type jsonTxn struct {
	Ops []jsonOp `json:"ops"`
}

// ParseTxnJSON decodes and validates a transaction in the JSON form of the
// CLI contract. Unknown fields and unknown ops are errors (wrapping
// ErrInvalid), never ignored.
func ParseTxnJSON(r io.Reader) (*Txn, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var jt jsonTxn
	if err := dec.Decode(&jt); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, describeJSONError(err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the transaction object", ErrInvalid)
	}
	t := &Txn{Ops: make([]Op, 0, len(jt.Ops))}
	for i, jo := range jt.Ops {
		op, err := jo.toOp()
		if err != nil {
			return nil, fmt.Errorf("%w: op %d: %v", ErrInvalid, i, err)
		}
		t.Ops = append(t.Ops, op)
	}
	return t, t.Validate()
}

func (jo *jsonOp) toOp() (Op, error) {
	op := Op{Key: jo.Key}
	val, err := jo.value()
	if err != nil {
		return op, err
	}
	switch jo.Op {
	case "put":
		if val == nil {
			return op, errors.New(`put needs "value" or "value_base64"`)
		}
		op.Kind, op.Value = OpPut, val
	case "del", "delete":
		op.Kind = OpDelete
	case "add":
		if jo.Delta == nil {
			return op, errors.New(`add needs an integer "delta"`)
		}
		op.Kind, op.Delta = OpAdd, *jo.Delta
	case "check":
		op.Kind = OpCheck
		return op, jo.check(&op)
	default:
		return op, fmt.Errorf("unknown op %q (want put, del, add or check)", jo.Op)
	}
	return op, nil
}

func (jo *jsonOp) value() ([]byte, error) {
	switch {
	case jo.Value != nil && jo.ValueBase64 != nil:
		return nil, errors.New(`give "value" or "value_base64", not both`)
	case jo.Value != nil:
		return []byte(*jo.Value), nil
	case jo.ValueBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*jo.ValueBase64)
		if err != nil {
			return nil, fmt.Errorf("value_base64: %v", err)
		}
		return b, nil
	}
	return nil, nil
}

// check fills a check op from exactly one of exists, equals, min.
func (jo *jsonOp) check(op *Op) error {
	n := 0
	if jo.Exists != nil {
		n++
		op.Check = CheckAbsent
		if *jo.Exists {
			op.Check = CheckExists
		}
	}
	if jo.Equals != nil {
		n++
		op.Check, op.Value = CheckEquals, []byte(*jo.Equals)
	}
	if jo.Min != nil {
		n++
		op.Check, op.Min = CheckMin, *jo.Min
	}
	if n != 1 {
		return errors.New(`check needs exactly one of "exists", "equals", "min"`)
	}
	return nil
}

// parseInt reads a stored decimal integer; a missing key is 0.
func parseInt(v []byte, ok bool) (int64, error) {
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q is not a decimal integer", truncate(v))
	}
	return n, nil
}

func addInt(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}

func truncate(v []byte) []byte {
	if len(v) > 32 {
		return append(v[:32:32], "..."...)
	}
	return v
}

// describeJSONError turns encoding/json's errors, which name Go types, into
// messages about the transaction document a user wrote.
func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return `empty input: want a JSON object like {"ops": [{"op": "put", "key": "k", "value": "v"}]}`
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON document ends too early"
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "the document"
		}
		return fmt.Sprintf("%s: got %s, want %s", field, te.Value, jsonTypeName(te.Type.Kind().String()))
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int64":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return `an array of operations`
	case "struct", "ptr":
		return "an object"
	}
	return kind
}
