package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseTxnJSON: no input panics; a parse error wraps ErrInvalid; a
// transaction that parses passes Validate, and re-encoded (as the client
// encodes) it parses back to the same operations.
func FuzzParseTxnJSON(f *testing.F) {
	f.Add([]byte(`{"ops":[{"op":"add","key":"a","delta":-1},{"op":"check","key":"a","min":0}]}`))
	f.Add([]byte(`{"ops":[{"op":"put","key":"k","value_base64":"AAE="},{"op":"check","key":"k","exists":true}]}`))
	f.Add([]byte(`{"ops":[{"op":"del","key":"x"},{"op":"check","key":"c","equals":"v"}]}`))
	f.Add([]byte(`{"ops":[{"op":"put","key_base64":"/w==","value":"\u00e9"},{"op":"check","key":"c","equals_base64":"/w=="}]}`))
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
		enc, err := json.Marshal(txn)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", txn.Ops, err)
		}
		back, err := ParseTxnJSON(bytes.NewReader(enc))
		if err != nil || !sameOps(back.Ops, txn.Ops) {
			t.Fatalf("re-encoded %s parses to %+v, %v; want %+v", enc, back, err, txn.Ops)
		}
	})
}
