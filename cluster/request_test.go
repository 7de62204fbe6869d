package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
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

// requestSize is exact for every kind of operation and length (one- to
// three-byte length prefixes, negative and large deltas), so encodeRequest
// allocates once, and a batch encoded in place has the bytes the earlier
// request-by-request concatenation gave (entries already in raft logs).
func TestRequestSizeExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	blob := func() []byte { return bytes.Repeat([]byte{'v'}, []int{0, 1, 127, 128, 300, 20000}[rng.IntN(6)]) }
	num := func() int64 { return []int64{0, 1, -1, 63, -64, 64, math.MaxInt64, math.MinInt64}[rng.IntN(8)] }
	var reqs []*request
	for range 300 {
		r := &request{id: strings.Repeat("i", min(rng.IntN(3)*40, MaxRequestID)), dedup: rng.IntN(2) == 0, txn: &store.Txn{}}
		if rng.IntN(2) == 0 {
			r.attempt = rng.Uint64()
		}
		for range 1 + rng.IntN(4) {
			k := "k" + strings.Repeat("k", []int{0, 1, 127, 128, 300}[rng.IntN(5)])
			switch rng.IntN(5) {
			case 0:
				r.txn.Ops = append(r.txn.Ops, store.Op{Kind: store.OpPut, Key: k, Value: blob()})
			case 1:
				r.txn.Ops = append(r.txn.Ops, store.Op{Kind: store.OpDelete, Key: k})
			case 2:
				r.txn.Ops = append(r.txn.Ops, store.Op{Kind: store.OpAdd, Key: k, Delta: num()})
			case 3:
				r.txn.Ops = append(r.txn.Ops, store.Op{Kind: store.OpCheck, Key: k, Check: store.CheckMin, Min: num()})
			default:
				r.txn.Ops = append(r.txn.Ops, store.Op{Kind: store.OpCheck, Key: k, Check: store.CheckEquals, Value: blob()})
			}
		}
		b := encodeRequest(r)
		if len(b) != requestSize(r) || cap(b) != len(b) {
			t.Fatalf("request of %d ops: encoding of %d bytes (capacity %d), requestSize %d", len(r.txn.Ops), len(b), cap(b), requestSize(r))
		}
		if got, err := decodeRequest(b); err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, got, r)
		}
		reqs = append(reqs, r)
	}
	for _, n := range []int{1, 2, 7, len(reqs)} {
		want := []byte{batchVersion}
		want = binary.AppendUvarint(want, uint64(n))
		for _, r := range reqs[:n] {
			want = appendBytes(want, encodeRequest(r))
		}
		if got := encodeBatch(reqs[:n]); !bytes.Equal(got, want) || cap(got) != len(got) {
			t.Fatalf("batch of %d: %d bytes (capacity %d), concatenated %d; equal %v", n, len(got), cap(got), len(want), bytes.Equal(got, want))
		}
	}
}
