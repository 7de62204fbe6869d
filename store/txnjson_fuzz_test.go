package store

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseTxnJSON: no input panics; a parse error wraps ErrInvalid; a
// transaction that parses passes Validate.
func FuzzParseTxnJSON(f *testing.F) {
	f.Add([]byte(`{"ops":[{"op":"add","key":"a","delta":-1},{"op":"check","key":"a","min":0}]}`))
	f.Add([]byte(`{"ops":[{"op":"put","key":"k","value_base64":"AAE="},{"op":"check","key":"k","exists":true}]}`))
	f.Add([]byte(`{"ops":[{"op":"del","key":"x"},{"op":"check","key":"c","equals":"v"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		txn, err := ParseTxnJSON(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if err := txn.Validate(); err != nil {
			t.Fatalf("parsed transaction fails Validate: %v", err)
		}
	})
}
