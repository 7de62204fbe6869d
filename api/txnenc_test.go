package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// everyOp holds each kind of operation, with keys, values and equals
// that are text and that are not UTF-8.
var everyOp = []Op{
	PutOp("k", "v"),
	PutOp("k\xff", "v\xfe\x00"),
	PutOp("empty", ""),
	DelOp("gone"),
	DelOp("\xc3"),
	AddOp("acct:1", -10),
	AddOp("acct:2", 0),
	CheckMinOp("acct:1", 0),
	CheckMinOp("acct:\xff", -5),
	CheckExistsOp("note", true),
	CheckExistsOp("tmp", false),
	CheckEqualsOp("cfg", "v2"),
	CheckEqualsOp("caf\u00e9", "\x00\xff"),
}

// TestTxnJSONRoundTrip: whatever the constructors build, MarshalJSON
// writes and ParseTxnJSON reads back byte for byte: the client's encoder
// and the server's decoder agree on every field, _base64 forms included.
func TestTxnJSONRoundTrip(t *testing.T) {
	b, err := json.Marshal(Txn{Ops: everyOp})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseTxnJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("ParseTxnJSON(%s): %v", b, err)
	}
	if !sameOps(got.Ops, everyOp) {
		t.Fatalf("round trip of %s:\n got %+v\nwant %+v", b, got.Ops, everyOp)
	}
	var back Txn
	if err := json.Unmarshal(b, &back); err != nil || !sameOps(back.Ops, everyOp) {
		t.Fatalf("json.Unmarshal: %+v, %v", back.Ops, err)
	}
	for _, op := range everyOp {
		ob, err := json.Marshal(op)
		var o Op
		if err == nil {
			err = json.Unmarshal(ob, &o)
		}
		if err != nil || !sameOps([]Op{o}, []Op{op}) {
			t.Errorf("op %+v: %s -> %+v, %v", op, ob, o, err)
		}
	}
}

// TestTxnJSONEncoding pins the bytes the client sends (the form of the
// CLI contract): text where the bytes are UTF-8, _base64 where not.
func TestTxnJSONEncoding(t *testing.T) {
	for _, c := range []struct {
		op   Op
		json string
	}{
		{PutOp("k", "v"), `{"op":"put","key":"k","value":"v"}`},
		{PutOp("k", ""), `{"op":"put","key":"k","value":""}`},
		{PutOp("\xff", "\x00\xff"), `{"op":"put","key_base64":"/w==","value_base64":"AP8="}`},
		{DelOp("k"), `{"op":"del","key":"k"}`},
		{AddOp("a", -3), `{"op":"add","key":"a","delta":-3}`},
		{AddOp("a", 0), `{"op":"add","key":"a","delta":0}`},
		{CheckMinOp("a", 0), `{"op":"check","key":"a","min":0}`},
		{CheckExistsOp("a", false), `{"op":"check","key":"a","exists":false}`},
		{CheckEqualsOp("a", "\xfe"), `{"op":"check","key":"a","equals_base64":"/g=="}`},
	} {
		b, err := json.Marshal(c.op)
		if err != nil || string(b) != c.json {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", c.op, b, err, c.json)
		}
	}
	if b, err := json.Marshal(Txn{}); err != nil || string(b) != `{"ops":null}` {
		t.Errorf("Marshal(Txn{}) = %s, %v", b, err)
	}
	for _, bad := range []Op{{Key: "k"}, {Kind: OpCheck, Key: "k"}, {Kind: 9, Key: "k"}} {
		if _, err := json.Marshal(Txn{Ops: []Op{bad}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Marshal(%+v): %v, want ErrInvalid", bad, err)
		}
	}
}

// TestWireFieldsMatchDecoder: the encoder's JSON fields are the
// decoder's, so a field one side knows cannot be missing on the other.
func TestWireFieldsMatchDecoder(t *testing.T) {
	fields := func(v any) []string {
		var names []string
		for f := range reflect.TypeOf(v).Fields() {
			names = append(names, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		slices.Sort(names)
		return names
	}
	enc, dec := fields(wireOp{}), fields(jsonOp{})
	if !slices.Equal(enc, dec) {
		t.Fatalf("encoder fields %v, decoder fields %v", enc, dec)
	}
}

// sameOps reports whether a and b hold the same operations (a nil and an
// empty value are the same).
func sameOps(a, b []Op) bool {
	return slices.EqualFunc(a, b, func(x, y Op) bool {
		return x.Kind == y.Kind && x.Key == y.Key && bytes.Equal(x.Value, y.Value) &&
			x.Delta == y.Delta && x.Check == y.Check && x.Min == y.Min
	})
}
