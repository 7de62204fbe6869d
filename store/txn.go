package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/kvtool/kvtool/internal/txncheck"
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
const MaxTxnBytes = txncheck.MaxTxnBytes

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

// Validate checks what can be checked without the state (see
// txncheck.Validate; the API checks the same).
func (t *Txn) Validate() error {
	return txncheck.Validate(t.Ops, ErrInvalid, (*Op).checked)
}

// checked is what txncheck checks of op.
func (op *Op) checked() txncheck.Op {
	return txncheck.Op{Kind: uint8(op.Kind), Check: uint8(op.Check), Key: op.Key, Value: op.Value}
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
