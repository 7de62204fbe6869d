package cluster

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/store"
)

// TestRequestEncodingFrozen freezes the bytes of request and batch entries:
// raft logs on disk hold them, and every member decodes them alike, so an
// encoder rewritten for speed (encodeBatchVersion's in-place encoding)
// must give exactly these bytes. They were produced by the encoders before
// that rewrite (b572675): a put with a client ID, a delete and a put of a
// value with a two-byte length under a retry attempt, and a transaction of
// adds (negative, large) and every kind of check; a batch of the first two
// (version 3) and of the first alone in the older slot-table version 2.
func TestRequestEncodingFrozen(t *testing.T) {
	req1 := "01010763312d30303031010107757365722f343205616c696365"
	req2 := "01030763312d303030320807060504030201020203746d7001016b8201" + strings.Repeat("00", 130)
	req3 := "010000060306616363743a31130306616363743a328080808080400406616363743a31047f04046e6f7465010404676f6e6502040363666703027632"
	reqs := []*request{
		{id: "c1-0001", dedup: true, txn: &store.Txn{Ops: []store.Op{{Kind: store.OpPut, Key: "user/42", Value: []byte("alice")}}}},
		{id: "c1-0002", dedup: true, attempt: 0x0102030405060708, txn: &store.Txn{Ops: []store.Op{
			{Kind: store.OpDelete, Key: "tmp"}, {Kind: store.OpPut, Key: "k", Value: make([]byte, 130)}}}},
		{id: "", txn: &store.Txn{Ops: []store.Op{
			{Kind: store.OpAdd, Key: "acct:1", Delta: -10},
			{Kind: store.OpAdd, Key: "acct:2", Delta: 1 << 40},
			{Kind: store.OpCheck, Key: "acct:1", Check: store.CheckMin, Min: -64},
			{Kind: store.OpCheck, Key: "note", Check: store.CheckExists},
			{Kind: store.OpCheck, Key: "gone", Check: store.CheckAbsent},
			{Kind: store.OpCheck, Key: "cfg", Check: store.CheckEquals, Value: []byte("v2")},
		}}},
	}
	for i, want := range []string{req1, req2, req3} {
		if got := hex.EncodeToString(encodeRequest(reqs[i])); got != want {
			t.Errorf("request %d:\n got %s\nwant %s", i+1, got, want)
		}
	}
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"batch", encodeBatch(reqs[:2]), "03021a" + req1 + "9f01" + req2},
		{"slot-table batch", encodeBatchVersion(batchVersionSlots, reqs[:1]), "02011a" + req1},
	} {
		if got := hex.EncodeToString(c.got); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	if got, err := decodeBatch(encodeBatch(reqs[:2])); err != nil || len(got) != 2 || got[1].attempt != reqs[1].attempt {
		t.Errorf("decode the batch: %v, %d requests", err, len(got))
	}
}
