// Package txncheck is the check of a transaction that needs no state: what
// the server refuses with 400 whatever the store holds, and what the store
// refuses before it stages anything. api.Txn.Validate and
// store.Txn.Validate both run it, so the two cannot drift apart. It
// imports no kvtool package: the client links neither the store nor the
// on-disk format through it.
//
// Both api and store number their kinds alike (put 1, del 2, add 3,
// check 4; exists 1, absent 2, equals 3, min 4); a test in api pins it.
// Validate is a pure function, safe to call concurrently.
package txncheck

import (
	"errors"
	"fmt"
)

// Limits of a transaction: format's on-disk limits (MaxKeySize,
// MaxValueSize, MaxTxnOps) and the store's MaxTxnBytes, which a test in
// api pins.
const (
	MaxKeySize   = 4 << 10  // bytes in a key
	MaxValueSize = 1 << 20  // bytes in a value
	MaxTxnOps    = 64 << 10 // operations in one transaction
	MaxTxnBytes  = 16 << 20 // bytes of keys and values in one transaction
)

// The kinds, as both api and store number them.
const (
	OpPut   = 1
	OpCheck = 4 // the last op kind
	// CheckFirst and CheckLast bound the check kinds.
	CheckFirst = 1
	CheckLast  = 4
)

// Op is what Validate needs of one operation.
type Op struct {
	Kind  uint8 // OpPut .. OpCheck
	Check uint8 // for OpCheck: CheckFirst .. CheckLast
	Key   string
	Value []byte
}

// Validate checks ops, each seen through view: at least one and at most
// MaxTxnOps operations, each with a key of 1 to MaxKeySize bytes, a value
// of at most MaxValueSize bytes and a known kind, and at most MaxTxnBytes
// of keys and values in all. Its errors wrap invalid.
func Validate[T any](ops []T, invalid error, view func(*T) Op) error {
	if len(ops) == 0 {
		return fmt.Errorf("%w: no operations", invalid)
	}
	if len(ops) > MaxTxnOps {
		return fmt.Errorf("%w: %d operations, limit %d", invalid, len(ops), MaxTxnOps)
	}
	total := 0
	for i := range ops {
		op := view(&ops[i])
		if err := op.Validate(); err != nil {
			return fmt.Errorf("%w: op %d: %v", invalid, i, err)
		}
		total += len(op.Key) + len(op.Value)
	}
	if total > MaxTxnBytes {
		return fmt.Errorf("%w: %d bytes of keys and values, limit %d", invalid, total, MaxTxnBytes)
	}
	return nil
}

// Validate checks one operation as Validate does each, saying what is
// wrong with it (not wrapped).
func (op Op) Validate() error {
	switch {
	case op.Key == "":
		return errors.New("empty key")
	case len(op.Key) > MaxKeySize:
		return fmt.Errorf("key of %d bytes, limit %d", len(op.Key), MaxKeySize)
	case len(op.Value) > MaxValueSize:
		return fmt.Errorf("value of %d bytes, limit %d", len(op.Value), MaxValueSize)
	case op.Kind < OpPut || op.Kind > OpCheck:
		return fmt.Errorf("unknown op kind %d", op.Kind)
	case op.Kind == OpCheck && (op.Check < CheckFirst || op.Check > CheckLast):
		return fmt.Errorf("unknown check kind %d", op.Check)
	}
	return nil
}
