package api

import (
	"bytes"
	"encoding/json"
	"testing"
)

// benchTxn is a two-account transfer with a note, as the bank workloads send.
var benchTxn = Txn{Ops: []Op{
	AddOp("acct:0001", -1), AddOp("acct:0002", 1), CheckMinOp("acct:0001", 0),
	PutOp("note", "moved 1 from acct:0001 to acct:0002"),
}}

// BenchmarkParseTxnJSON measures the server's decoding of a small
// transaction.
func BenchmarkParseTxnJSON(b *testing.B) {
	doc, err := json.Marshal(benchTxn)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTxnJSON(bytes.NewReader(doc)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalTxn measures the client's encoding of the same.
func BenchmarkMarshalTxn(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(benchTxn); err != nil {
			b.Fatal(err)
		}
	}
}
