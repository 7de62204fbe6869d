package server

import (
	"io"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/store"
)

// ParseTxn reads a transaction in the JSON of the CLI contract
// (api.ParseTxnJSON: streamed, strict, bounded) and returns it as the
// store commits it. Bad input is an error wrapping api.ErrInvalid; a
// failure to read r is returned wrapped as itself.
func ParseTxn(r io.Reader) (*store.Txn, error) {
	t, err := api.ParseTxnJSON(r)
	if err != nil {
		return nil, err
	}
	return StoreTxn(t), nil
}

// StoreTxn converts a transaction of the API into the store's. The
// operations' keys and values are shared, not copied. An unknown kind
// becomes the zero kind, which store.Txn.Validate refuses.
func StoreTxn(t *api.Txn) *store.Txn {
	ops := make([]store.Op, len(t.Ops))
	for i, op := range t.Ops {
		ops[i] = store.Op{Kind: storeOpKind(op.Kind), Key: op.Key, Value: op.Value, Delta: op.Delta,
			Check: storeCheckKind(op.Check), Min: op.Min}
	}
	return &store.Txn{Ops: ops}
}

func storeOpKind(k api.OpKind) store.OpKind {
	switch k {
	case api.OpPut:
		return store.OpPut
	case api.OpDelete:
		return store.OpDelete
	case api.OpAdd:
		return store.OpAdd
	case api.OpCheck:
		return store.OpCheck
	}
	return 0
}

func storeCheckKind(k api.CheckKind) store.CheckKind {
	switch k {
	case api.CheckExists:
		return store.CheckExists
	case api.CheckAbsent:
		return store.CheckAbsent
	case api.CheckEquals:
		return store.CheckEquals
	case api.CheckMin:
		return store.CheckMin
	}
	return 0
}
