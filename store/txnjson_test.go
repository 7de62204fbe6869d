package store

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTxnJSONErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, "empty input"},
		{`{"ops": [`, "ends too early"},
		{`{"ops": [{"op": "add", "key": "a", "delta": 1.5}]}`, `ops.delta: got number 1.5, want an integer`},
		{`{"ops": [{"op": "add", "key": "a", "delta": "7"}]}`, `ops.delta: got string, want an integer`},
		{`{"ops": {}}`, `ops: got object, want an array of operations`},
		{`{"ops": [{"op": "put", "key": "a", "value": "v", "ttl": 3}]}`, `unknown field "ttl"`},
		{`{"ops": [{"op": "frob", "key": "a"}]}`, `op 0: unknown op "frob"`},
		{`{"ops": [{"op": "check", "key": "a"}]}`, `exactly one of`},
		{`{"ops": [{"op": "put", "key": "", "value": "v"}]}`, `op 0: empty key`},
		{`{"ops": []}`, `no operations`},
		{`{"ops": [{"op": "del", "key": "a"}]} {}`, `trailing data`},
		{`{"ops": [{"op": "put", "key": "a", "value_base64": "%%"}]}`, `value_base64`},
	} {
		_, err := ParseTxnJSON(strings.NewReader(tc.in))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseTxnJSON(%q) = %v, want ErrInvalid containing %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "Go struct") {
			t.Errorf("ParseTxnJSON(%q) leaks Go internals: %v", tc.in, err)
		}
	}
	txn, err := ParseTxnJSON(strings.NewReader(`{"ops": [
		{"op": "add", "key": "acct:1", "delta": -10},
		{"op": "check", "key": "acct:1", "min": 0},
		{"op": "put", "key": "note", "value_base64": "AAE="},
		{"op": "check", "key": "cfg", "equals": "v2"},
		{"op": "check", "key": "tmp", "exists": false}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Op{
		{Kind: OpAdd, Key: "acct:1", Delta: -10},
		{Kind: OpCheck, Key: "acct:1", Check: CheckMin},
		{Kind: OpPut, Key: "note", Value: []byte{0, 1}},
		{Kind: OpCheck, Key: "cfg", Check: CheckEquals, Value: []byte("v2")},
		{Kind: OpCheck, Key: "tmp", Check: CheckAbsent},
	}
	for i, op := range txn.Ops {
		if op.Kind != want[i].Kind || op.Key != want[i].Key || op.Delta != want[i].Delta ||
			op.Check != want[i].Check || op.Min != want[i].Min || string(op.Value) != string(want[i].Value) {
			t.Errorf("op %d = %+v, want %+v", i, op, want[i])
		}
	}
}
