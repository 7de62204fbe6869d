package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

// TestBadInputChangesNothing sends input that can never commit and checks
// each gets its 4xx with a clear message, and that the applied index and
// the state hash are unchanged afterwards.
func TestBadInputChangesNothing(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	ts.mustPut("acct:1", "100")
	ts.mustPut("note", "not a number")

	bigKey := strings.Repeat("k", format.MaxKeySize+1)
	cases := []struct {
		name, method, path string
		body               []byte
		status             int
		msg                string // substring of the error message
	}{
		{"malformed JSON", "POST", "/v1/txn", []byte(`{"ops":[{"op":"put"`), 400, "invalid transaction"},
		{"not an object", "POST", "/v1/txn", []byte(`[1,2]`), 400, "got array, want an object"},
		{"empty body", "POST", "/v1/txn", nil, 400, "empty body"},
		{"no ops", "POST", "/v1/txn", []byte(`{"ops":[]}`), 400, "no operations"},
		{"trailing data", "POST", "/v1/txn", []byte(`{"ops":[{"op":"del","key":"a"}]} {}`), 400, "trailing data"},
		{"unknown op", "POST", "/v1/txn", txnJSON(`{"op":"incr","key":"acct:1"}`), 400, `unknown op "incr"`},
		{"unknown field", "POST", "/v1/txn", txnJSON(`{"op":"put","key":"a","value":"1","ttl":5}`), 400, `unknown field "ttl"`},
		{"unknown top-level field", "POST", "/v1/txn", []byte(`{"ops":[],"atomic":true}`), 400, `unknown field "atomic"`},
		{"fractional delta", "POST", "/v1/txn", txnJSON(`{"op":"add","key":"acct:1","delta":1.5}`), 400, "delta"},
		{"string delta", "POST", "/v1/txn", txnJSON(`{"op":"add","key":"acct:1","delta":"10"}`), 400, "delta"},
		{"huge delta", "POST", "/v1/txn", txnJSON(`{"op":"add","key":"acct:1","delta":1e30}`), 400, "delta"},
		{"add without delta", "POST", "/v1/txn", txnJSON(`{"op":"add","key":"acct:1"}`), 400, `add needs an integer "delta"`},
		{"add on text", "POST", "/v1/txn", txnJSON(`{"op":"add","key":"note","delta":1}`), 409, "not a decimal integer"},
		{"add overflow", "POST", "/v1/txn", txnJSON(`{"op":"add","key":"acct:1","delta":9223372036854775807}`), 409, "overflows"},
		{"put without value", "POST", "/v1/txn", txnJSON(`{"op":"put","key":"a"}`), 400, `put needs "value"`},
		{"bad base64", "POST", "/v1/txn", txnJSON(`{"op":"put","key":"a","value_base64":"!!"}`), 400, "value_base64"},
		{"check with two conditions", "POST", "/v1/txn", txnJSON(`{"op":"check","key":"a","exists":true,"min":1}`), 400, "exactly one"},
		{"empty key in txn", "POST", "/v1/txn", txnJSON(`{"op":"put","key":"","value":"x"}`), 400, "empty key"},
		{"long key in txn", "POST", "/v1/txn", txnJSON(fmt.Sprintf(`{"op":"del","key":%q}`, bigKey)), 400, "limit"},
		{"partial txn: bad second op", "POST", "/v1/txn", txnJSON(`{"op":"put","key":"x","value":"1"},{"op":"nope","key":"y"}`), 400, "op 1"},
		{"txn over MaxTxnBytes", "POST", "/v1/txn", bigTxn(store.MaxTxnBytes/(format.MaxValueSize-1) + 1), 400, "bytes of keys and values"},
		{"txn body over bound", "POST", "/v1/txn", bytes.Repeat([]byte(" "), server.MaxTxnBody+1), 413, "transaction is over the limit"},
		{"empty key put", "PUT", "/v1/kv/", []byte("x"), 400, "empty key"},
		{"empty key get", "GET", "/v1/kv/", nil, 400, "empty key"},
		{"empty key delete", "DELETE", "/v1/kv/", nil, 400, "empty key"},
		{"long key put", "PUT", client.KeyPath(bigKey), []byte("x"), 400, "over the limit"},
		{"long key get", "GET", client.KeyPath(bigKey), nil, 400, "over the limit"},
		{"value over MaxValueSize", "PUT", client.KeyPath("big"), make([]byte, format.MaxValueSize+1), 400, "value of 1048577 bytes is over the limit"},
		{"put body over bound", "PUT", client.KeyPath("big"), make([]byte, server.MaxPutBody+1), 413, fmt.Sprintf("value is over the limit of %d bytes", format.MaxValueSize)},
		{"check fails", "POST", "/v1/txn", txnJSON(`{"op":"put","key":"new","value":"1"},{"op":"check","key":"acct:1","equals":"99"}`), 409, "op 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := ts.state()
			var body *bytes.Reader
			if c.body != nil {
				body = bytes.NewReader(c.body)
			}
			a := ts.do(c.method, c.path, readerOrNil(body))
			if a.status != c.status {
				t.Fatalf("status %d (%q), want %d", a.status, trim(a.body), c.status)
			}
			if msg := a.errorMessage(t); !strings.Contains(msg, c.msg) {
				t.Fatalf("message %q does not say %q", msg, c.msg)
			} else {
				t.Logf("%d %s", a.status, trim([]byte(msg)))
			}
			if after := ts.state(); after != before {
				t.Fatalf("state changed: %+v -> %+v", before, after)
			}
		})
	}
}

func readerOrNil(r *bytes.Reader) io.Reader {
	if r == nil {
		return nil
	}
	return r
}

func txnJSON(ops string) []byte { return []byte(`{"ops":[` + ops + `]}`) }

// bigTxn is a transaction of n puts of values just under the value limit.
func bigTxn(n int) []byte {
	val := strings.Repeat("v", format.MaxValueSize-1)
	var ops []api.Op
	for i := range n {
		ops = append(ops, api.PutOp(fmt.Sprint("k", i), val))
	}
	b, _ := json.Marshal(api.Txn{Ops: ops})
	return b
}

func trim(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
