package cluster

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/kvtool/kvtool/store"
)

func sampleRequest() *request {
	return &request{id: "client-7", dedup: true, txn: &store.Txn{Ops: []store.Op{
		{Kind: store.OpPut, Key: "a", Value: []byte("1")},
		{Kind: store.OpDelete, Key: "b"},
		{Kind: store.OpAdd, Key: "c", Delta: -42},
		{Kind: store.OpCheck, Key: "c", Check: store.CheckMin, Min: -100},
		{Kind: store.OpCheck, Key: "a", Check: store.CheckEquals, Value: []byte("1")},
		{Kind: store.OpCheck, Key: "d", Check: store.CheckAbsent},
		{Kind: store.OpCheck, Key: "a", Check: store.CheckExists},
	}}}
}

func TestRequestRoundTrip(t *testing.T) {
	r := sampleRequest()
	b := encodeRequest(r)
	got, err := decodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got.txn, r.txn)
	}
	for n := range len(b) {
		if _, err := decodeRequest(b[:n]); !errors.Is(err, errBadRequest) {
			t.Fatalf("request cut to %d of %d bytes: %v", n, len(b), err)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(encodeRequest(sampleRequest()))
	f.Add([]byte{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("error does not wrap errBadRequest: %v", err)
			}
			return
		}
		again := encodeRequest(r)
		r2, err := decodeRequest(again)
		if err != nil || !bytes.Equal(encodeRequest(r2), again) {
			t.Fatalf("re-encoding what was decoded: %v", err)
		}
	})
}
