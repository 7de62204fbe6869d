package server

import (
	"strings"
	"testing"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/store"
)

// TestParseTxn: every kind of operation of the transaction JSON reaches
// the store as that kind, with its key, value, delta and bound.
func TestParseTxn(t *testing.T) {
	got, err := ParseTxn(strings.NewReader(`{"ops": [
		{"op": "put", "key": "p", "value": "v"},
		{"op": "del", "key": "d"},
		{"op": "add", "key": "a", "delta": -7},
		{"op": "check", "key": "e", "exists": true},
		{"op": "check", "key": "n", "exists": false},
		{"op": "check", "key": "q", "equals_base64": "/w=="},
		{"op": "check", "key": "m", "min": 3}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Op{
		{Kind: store.OpPut, Key: "p", Value: []byte("v")},
		{Kind: store.OpDelete, Key: "d"},
		{Kind: store.OpAdd, Key: "a", Delta: -7},
		{Kind: store.OpCheck, Key: "e", Check: store.CheckExists},
		{Kind: store.OpCheck, Key: "n", Check: store.CheckAbsent},
		{Kind: store.OpCheck, Key: "q", Check: store.CheckEquals, Value: []byte{0xff}},
		{Kind: store.OpCheck, Key: "m", Check: store.CheckMin, Min: 3},
	}
	if len(got.Ops) != len(want) {
		t.Fatalf("%d ops, want %d", len(got.Ops), len(want))
	}
	for i, op := range got.Ops {
		w := want[i]
		if op.Kind != w.Kind || op.Key != w.Key || string(op.Value) != string(w.Value) ||
			op.Delta != w.Delta || op.Check != w.Check || op.Min != w.Min {
			t.Errorf("op %d = %+v, want %+v", i, op, w)
		}
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the store refuses the converted transaction: %v", err)
	}
	if bad := StoreTxn(&api.Txn{Ops: []api.Op{{Kind: 9, Key: "k"}}}); bad.Validate() == nil {
		t.Error("an unknown kind converted to a kind the store accepts")
	}
}
