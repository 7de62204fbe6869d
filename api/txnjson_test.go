package api

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/kvtool/kvtool/format"
)

func TestParseTxnJSONErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, "empty input"},
		{`{"ops": [`, "ends too early"},
		{`{"ops": [{"op": "add", "key": "a", "delta": 1.5}]}`, `op 0: delta: got number 1.5, want an integer`},
		{`{"ops": [{"op": "add", "key": "a", "delta": "7"}]}`, `op 0: delta: got string, want an integer`},
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

// TestParseTxnJSONRejectsInvalidUTF8: a key or value that is not valid
// UTF-8 (raw bytes, or an escaped half of a surrogate pair) is refused,
// naming the op, instead of being rewritten to U+FFFD, where two different
// keys would become one. The _base64 forms carry any bytes.
func TestParseTxnJSONRejectsInvalidUTF8(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"ops": [{"op": "put", "key": "a", "value": "v"}, {"op": "put", "key": "k` + "\xff" + `", "value": "v"}]}`, `op 1: key is not valid UTF-8: byte 0xff at byte 1`},
		{`{"ops": [{"op": "del", "key": "` + "\xc3" + `"}]}`, `op 0: key is not valid UTF-8`},
		{`{"ops": [{"op": "put", "key": "a", "value": "\ud800"}]}`, `op 0: value: \ud800 is half of a surrogate pair`},
		{`{"ops": [{"op": "put", "key": "\udc00x", "value": "v"}]}`, `op 0: key: \udc00 is half`},
		{`{"ops": [{"op": "put", "key": "a", "value": "` + "\xed\xa0\x80" + `"}]}`, `op 0: value is not valid UTF-8`},
		{`{"ops": [{"op": "check", "key": "a", "equals": "` + "\xfe" + `"}]}`, `op 0: equals is not valid UTF-8`},
		{`{"ops": [{"op": "put", "key": "a", "key_base64": "YQ==", "value": "v"}]}`, `give "key" or "key_base64", not both`},
		{`{"ops": [{"op": "put", "key": 7, "value": "v"}]}`, `key: got a number`},
	} {
		_, err := ParseTxnJSON(strings.NewReader(tc.in))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseTxnJSON(%q) = %v, want ErrInvalid containing %q", tc.in, err, tc.want)
		}
	}
	txn, err := ParseTxnJSON(strings.NewReader(`{"ops": [
		{"op": "put", "key_base64": "/w==", "value": "\u00e9\ud83d\ude00\ufffd` + "\uFFFD" + `\n\"\\\/"},
		{"op": "put", "key_base64": "/g==", "value_base64": "/w=="},
		{"op": "check", "key": "caf\u00e9", "equals_base64": "AP8="}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Op{
		{Kind: OpPut, Key: "\xff", Value: []byte("é😀\uFFFD\uFFFD\n\"\\/")},
		{Kind: OpPut, Key: "\xfe", Value: []byte{0xff}},
		{Kind: OpCheck, Key: "café", Check: CheckEquals, Value: []byte{0, 0xff}},
	}
	for i, op := range txn.Ops {
		if op.Kind != want[i].Kind || op.Key != want[i].Key || op.Check != want[i].Check || string(op.Value) != string(want[i].Value) {
			t.Errorf("op %d = %+v, want %+v", i, op, want[i])
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestParseTxnJSONStopsAtLimits: a document of more operations than a
// transaction may hold is refused once the first operation past the
// limit is read, not after the whole document was decoded; likewise past
// MaxTxnBytes of keys and values.
func TestParseTxnJSONStopsAtLimits(t *testing.T) {
	op := `{"op":"del","key":"a"},`
	n := 4 * format.MaxTxnOps
	doc := `{"ops":[` + strings.Repeat(op, n) + `{"op":"del","key":"a"}]}`
	cr := &countingReader{r: strings.NewReader(doc)}
	_, err := ParseTxnJSON(cr)
	if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "more than 65536 operations") {
		t.Fatalf("ParseTxnJSON: %v", err)
	}
	if limit := int64((format.MaxTxnOps+1)*len(op)) + 64<<10; cr.n > limit {
		t.Fatalf("read %d bytes of a %d-byte document before refusing it; the limit is reached after %d", cr.n, len(doc), limit)
	}

	val := strings.Repeat("v", format.MaxValueSize)
	var b strings.Builder
	b.WriteString(`{"ops":[`)
	for i := range 2 * MaxTxnBytes / format.MaxValueSize {
		fmt.Fprintf(&b, `{"op":"put","key":"k%d","value":%q},`, i, val)
	}
	b.WriteString(`{"op":"del","key":"a"}]}`)
	cr = &countingReader{r: strings.NewReader(b.String())}
	_, err = ParseTxnJSON(cr)
	if err == nil || !strings.Contains(err.Error(), "bytes of keys and values") {
		t.Fatalf("ParseTxnJSON: %v", err)
	}
	if limit := int64(MaxTxnBytes + 2*format.MaxValueSize + 64<<10); cr.n > limit {
		t.Fatalf("read %d bytes of a %d-byte document before refusing it", cr.n, b.Len())
	}
}

// TestParseTxnJSONReadError: a failure of the reader is not bad input.
func TestParseTxnJSONReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := ParseTxnJSON(io.MultiReader(strings.NewReader(`{"ops":[{"op":"del",`), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) || errors.Is(err, ErrInvalid) {
		t.Fatalf("ParseTxnJSON: %v", err)
	}
}
