package api

import (
	"errors"

	"github.com/kvtool/kvtool/internal/txncheck"
)

// OpKind is what an operation does.
type OpKind uint8

// Operation kinds.
const (
	OpPut    OpKind = iota + 1 // "put": set Key to Value
	OpDelete                   // "del": remove Key
	OpAdd                      // "add": add Delta to the decimal integer at Key (missing = 0)
	OpCheck                    // "check": abort the transaction unless Check holds for Key
)

// CheckKind is what an OpCheck requires.
type CheckKind uint8

// Check kinds.
const (
	CheckExists CheckKind = iota + 1 // "exists": true: Key is present
	CheckAbsent                      // "exists": false: Key is absent
	CheckEquals                      // "equals": Key's value equals Value
	CheckMin                         // "min": Key holds a decimal integer >= Min (missing = 0)
)

// Op is one operation of a transaction, as both sides of the API hold it.
// Its JSON is the transaction JSON of the CLI contract (MarshalJSON), and
// ParseTxnJSON reads that JSON back into an Op: keys and values are bytes,
// sent as text when they are valid UTF-8 and as _base64 otherwise.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte    // OpPut; OpCheck with CheckEquals
	Delta int64     // OpAdd
	Check CheckKind // OpCheck
	Min   int64     // OpCheck with CheckMin
}

// Txn is a transaction: operations applied in order to the transaction's
// private view of the state; a check sees the effect of the operations
// before it. All or nothing. Its JSON is {"ops": [...]}.
type Txn struct {
	Ops []Op
}

// Limits of a transaction. They equal the store's (format.MaxKeySize,
// format.MaxValueSize, format.MaxTxnOps, store.MaxTxnBytes), which a test
// pins; they come from internal/txncheck so the client does not link the
// store.
const (
	MaxKeySize   = txncheck.MaxKeySize   // bytes in a key
	MaxValueSize = txncheck.MaxValueSize // bytes in a value
	MaxTxnOps    = txncheck.MaxTxnOps    // operations in one transaction
	MaxTxnBytes  = txncheck.MaxTxnBytes  // bytes of keys and values in one transaction
)

// ErrInvalid is returned (wrapped) for a transaction that can never
// commit: malformed JSON, an unknown field or op, an empty key, a key or
// value over the limits, too many ops.
var ErrInvalid = errors.New("kvtool/api: invalid transaction")

// PutOp sets key to value.
func PutOp(key, value string) Op { return Op{Kind: OpPut, Key: key, Value: []byte(value)} }

// DelOp removes key.
func DelOp(key string) Op { return Op{Kind: OpDelete, Key: key} }

// AddOp adds delta to the decimal integer at key (a missing key is 0).
func AddOp(key string, delta int64) Op { return Op{Kind: OpAdd, Key: key, Delta: delta} }

// CheckMinOp aborts the transaction unless key holds an integer >= min.
func CheckMinOp(key string, min int64) Op {
	return Op{Kind: OpCheck, Key: key, Check: CheckMin, Min: min}
}

// CheckExistsOp aborts the transaction unless key's presence is exists.
func CheckExistsOp(key string, exists bool) Op {
	op := Op{Kind: OpCheck, Key: key, Check: CheckAbsent}
	if exists {
		op.Check = CheckExists
	}
	return op
}

// CheckEqualsOp aborts the transaction unless key holds exactly value.
func CheckEqualsOp(key, value string) Op {
	return Op{Kind: OpCheck, Key: key, Check: CheckEquals, Value: []byte(value)}
}

// Validate checks what can be checked without the state: what the server
// would refuse with 400 whatever the store holds (see txncheck.Validate;
// the store checks the same).
func (t *Txn) Validate() error {
	return txncheck.Validate(t.Ops, ErrInvalid, (*Op).checked)
}

// checked is what txncheck checks of op.
func (op *Op) checked() txncheck.Op {
	return txncheck.Op{Kind: uint8(op.Kind), Check: uint8(op.Check), Key: op.Key, Value: op.Value}
}

// validate says what is wrong with op alone.
func (op *Op) validate() error { return op.checked().Validate() }
