package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonOp is the wire form of an Op (DESIGN.md "Transaction JSON") as it is
// decoded. The byte fields stay raw JSON until toOp decodes them strictly:
// a key or value is a JSON string of valid UTF-8, or base64 of any bytes in
// the _base64 form, never rewritten. wireOp is the same form as encoded;
// a test checks that the two carry the same fields.
type jsonOp struct {
	Op           string          `json:"op"`
	Key          json.RawMessage `json:"key"`
	KeyBase64    json.RawMessage `json:"key_base64"`
	Value        json.RawMessage `json:"value"`
	ValueBase64  json.RawMessage `json:"value_base64"`
	Delta        *int64          `json:"delta"`
	Exists       *bool           `json:"exists"`
	Equals       json.RawMessage `json:"equals"`
	EqualsBase64 json.RawMessage `json:"equals_base64"`
	Min          *int64          `json:"min"`
}

// ParseTxnJSON decodes and validates a transaction in the JSON form of the
// CLI contract, as Txn.MarshalJSON writes it. Unknown fields and unknown ops are errors (wrapping
// ErrInvalid), never ignored. Keys and values are JSON strings of valid
// UTF-8 ("key", "value", "equals") or base64 of any bytes ("key_base64",
// "value_base64", "equals_base64"); a string that is not valid UTF-8 is an
// error naming the op, never rewritten to U+FFFD.
//
// It reads r as a stream, one operation at a time, and stops at the first
// operation past MaxTxnOps or past MaxTxnBytes of keys and values:
// a huge document costs the memory of what one transaction may hold, not
// of the document. A failure to read r is returned wrapped, not as
// ErrInvalid, so a caller can tell a body over its limit from bad input.
func ParseTxnJSON(r io.Reader) (*Txn, error) {
	src := &readRecorder{r: r}
	d := &txnDecoder{dec: json.NewDecoder(src), src: src}
	d.dec.DisallowUnknownFields()
	d.dec.UseNumber()
	t, err := d.document()
	if err != nil {
		return nil, err
	}
	return t, t.Validate()
}

// txnDecoder walks a transaction document token by token.
type txnDecoder struct {
	dec     *json.Decoder
	src     *readRecorder
	started bool   // the first token was read: an end of input is early
	jo      jsonOp // the operation being decoded, reused
}

// readRecorder remembers the error its reader returned, so a read error is
// told apart from the decoder's own.
type readRecorder struct {
	r   io.Reader
	err error
}

func (rr *readRecorder) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if err != nil && err != io.EOF {
		rr.err = err
	}
	return n, err
}

// document reads {"ops": [...]} and checks nothing follows it.
func (d *txnDecoder) document() (*Txn, error) {
	if err := d.delim('{', "the document", "an object"); err != nil {
		return nil, err
	}
	var t *Txn
	for d.dec.More() {
		tok, err := d.token()
		if err != nil {
			return nil, err
		}
		if name, _ := tok.(string); name != "ops" {
			return nil, fmt.Errorf("%w: unknown field %q (a transaction is {\"ops\": [...]})", ErrInvalid, name)
		}
		if t != nil {
			return nil, fmt.Errorf(`%w: "ops" appears twice`, ErrInvalid)
		}
		if t, err = d.ops(); err != nil {
			return nil, err
		}
	}
	if _, err := d.token(); err != nil { // the closing brace
		return nil, err
	}
	if d.dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the transaction object", ErrInvalid)
	}
	if t == nil {
		t = &Txn{}
	}
	return t, nil
}

// ops reads the operations array, converting and checking each operation
// as it arrives.
func (d *txnDecoder) ops() (*Txn, error) {
	tok, err := d.token()
	if err != nil {
		return nil, err
	}
	t := &Txn{}
	if tok == nil { // "ops": null
		return t, nil
	}
	if tok != json.Delim('[') {
		return nil, fmt.Errorf("%w: ops: got %s, want an array of operations", ErrInvalid, tokenKind(tok))
	}
	total := 0
	for d.dec.More() {
		i := len(t.Ops)
		if i == MaxTxnOps {
			return nil, fmt.Errorf("%w: more than %d operations, limit %d", ErrInvalid, MaxTxnOps, MaxTxnOps)
		}
		op, err := d.op(i)
		if err != nil {
			return nil, err
		}
		if total += len(op.Key) + len(op.Value); total > MaxTxnBytes {
			return nil, fmt.Errorf("%w: more than %d bytes of keys and values by op %d, limit %d", ErrInvalid, MaxTxnBytes, i, MaxTxnBytes)
		}
		if len(t.Ops) == cap(t.Ops) { // double: append's gentler growth of a large slice allocates more in all
			t.Ops = slices.Grow(t.Ops, max(16, len(t.Ops)))
		}
		t.Ops = append(t.Ops, op)
	}
	if _, err := d.token(); err != nil { // the closing bracket
		return nil, err
	}
	return t, nil
}

// op decodes and checks operation i.
func (d *txnDecoder) op(i int) (Op, error) {
	d.jo = jsonOp{} // fresh byte fields: an op's value keeps the bytes it was decoded into
	jo := &d.jo
	if err := d.dec.Decode(jo); err != nil {
		if rerr := d.readErr(err); rerr != nil {
			return Op{}, rerr
		}
		return Op{}, fmt.Errorf("%w: op %d: %v", ErrInvalid, i, describeJSONError(err, "the operation"))
	}
	op, err := jo.toOp()
	if err == nil {
		err = op.validate()
	}
	if err != nil {
		return op, fmt.Errorf("%w: op %d: %v", ErrInvalid, i, err)
	}
	return op, nil
}

// delim reads a token that must be the delimiter want.
func (d *txnDecoder) delim(want json.Delim, what, wantName string) error {
	tok, err := d.token()
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("%w: %s: got %s, want %s", ErrInvalid, what, tokenKind(tok), wantName)
	}
	return nil
}

// token reads the next token; an error is described for the user.
func (d *txnDecoder) token() (json.Token, error) {
	tok, err := d.dec.Token()
	if err != nil {
		if rerr := d.readErr(err); rerr != nil {
			return nil, rerr
		}
		if err == io.EOF && d.started {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, describeJSONError(err, "the document"))
	}
	d.started = true
	return tok, nil
}

// readErr returns the reader's failure behind err, if that is what err is.
func (d *txnDecoder) readErr(err error) error {
	if d.src.err == nil || !errors.Is(err, d.src.err) {
		return nil
	}
	return fmt.Errorf("kvtool/api: read the transaction: %w", d.src.err)
}

func tokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "array"
		}
		return "object"
	case string:
		return "string"
	case json.Number, float64:
		return "number"
	case bool:
		return "true or false"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

func (jo *jsonOp) toOp() (Op, error) {
	key, _, err := bytesField("key", jo.Key, jo.KeyBase64)
	op := Op{Key: string(key)}
	if err != nil {
		return op, err
	}
	val, hasVal, err := bytesField("value", jo.Value, jo.ValueBase64)
	if err != nil {
		return op, err
	}
	switch jo.Op {
	case "put":
		if !hasVal {
			return op, errors.New(`put needs "value" or "value_base64"`)
		}
		op.Kind, op.Value = OpPut, val
	case "del", "delete":
		op.Kind = OpDelete
	case "add":
		if jo.Delta == nil {
			return op, errors.New(`add needs an integer "delta"`)
		}
		op.Kind, op.Delta = OpAdd, *jo.Delta
	case "check":
		op.Kind = OpCheck
		return op, jo.check(&op)
	default:
		return op, fmt.Errorf("unknown op %q (want put, del, add or check)", jo.Op)
	}
	return op, nil
}

// check fills a check op from exactly one of exists, equals (or
// equals_base64), min.
func (jo *jsonOp) check(op *Op) error {
	equals, hasEquals, err := bytesField("equals", jo.Equals, jo.EqualsBase64)
	if err != nil {
		return err
	}
	n := 0
	if jo.Exists != nil {
		n++
		op.Check = CheckAbsent
		if *jo.Exists {
			op.Check = CheckExists
		}
	}
	if hasEquals {
		n++
		op.Check, op.Value = CheckEquals, equals
	}
	if jo.Min != nil {
		n++
		op.Check, op.Min = CheckMin, *jo.Min
	}
	if n != 1 {
		return errors.New(`check needs exactly one of "exists", "equals", "min"`)
	}
	return nil
}

// bytesField decodes a field given as text (name) or as base64
// (name_base64), and reports whether it was given at all. A null counts as
// absent.
func bytesField(name string, text, b64 json.RawMessage) ([]byte, bool, error) {
	hasText, hasB64 := given(text), given(b64)
	switch {
	case hasText && hasB64:
		return nil, false, fmt.Errorf(`give %q or "%s_base64", not both`, name, name)
	case hasText:
		b, err := jsonString(text, name, true)
		return b, err == nil, err
	case hasB64:
		s, err := jsonString(b64, name+"_base64", false)
		if err != nil {
			return nil, false, err
		}
		b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		n, err := base64.StdEncoding.Decode(b, s)
		if err != nil {
			return nil, false, fmt.Errorf("%s_base64: %v", name, err)
		}
		return b[:n], true, nil
	}
	return nil, false, nil
}

func given(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// jsonString decodes the JSON string raw, the value of field name. Unlike
// encoding/json it never replaces anything with U+FFFD: invalid UTF-8, or
// an escaped surrogate that is not half of a pair, is an error naming its
// byte offset in the string (and, with hint, where to send such bytes). It
// decodes in place: the result shares raw's bytes.
func jsonString(raw []byte, name string, hint bool) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		kind := "a number, object or array"
		if len(raw) > 0 && (raw[0] == 't' || raw[0] == 'f') {
			kind = "true or false"
		}
		return nil, fmt.Errorf("%s: got %s, want a string", name, kind)
	}
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return s, nil
	}
	out := s[:0] // never longer than what was read: decoding in place is safe
	for i := 0; i < len(s); {
		if s[i] == '\\' {
			r, n, err := unescape(s[i:])
			if err != nil {
				return nil, fmt.Errorf("%s: %v at byte %d of the string%s", name, err, i, base64Hint(name, hint))
			}
			out = utf8.AppendRune(out, r)
			i += n
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return nil, fmt.Errorf("%s is not valid UTF-8: byte %#02x at byte %d of the string%s", name, s[i], i, base64Hint(name, hint))
		}
		out = append(out, s[i:i+size]...)
		i += size
	}
	return out, nil
}

func base64Hint(name string, hint bool) string {
	if !hint {
		return ""
	}
	return fmt.Sprintf(`; send bytes that are not UTF-8 text as "%s_base64"`, name)
}

// unescape decodes the escape sequence at the start of s (s[0] == '\\'):
// the rune and the bytes it took. A \u escape of a surrogate must be
// followed by the other half of its pair.
func unescape(s []byte) (rune, int, error) {
	if len(s) < 2 {
		return 0, 0, errors.New("a lone backslash")
	}
	switch s[1] {
	case '"', '\\', '/':
		return rune(s[1]), 2, nil
	case 'b':
		return '\b', 2, nil
	case 'f':
		return '\f', 2, nil
	case 'n':
		return '\n', 2, nil
	case 'r':
		return '\r', 2, nil
	case 't':
		return '\t', 2, nil
	case 'u':
		r, ok := hex4(s[2:])
		if !ok {
			return 0, 0, errors.New(`a \u escape without four hex digits`)
		}
		if !utf16.IsSurrogate(r) {
			return r, 6, nil
		}
		if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
			if lo, ok := hex4(s[8:]); ok {
				if pair := utf16.DecodeRune(r, lo); pair != utf8.RuneError {
					return pair, 12, nil
				}
			}
		}
		return 0, 0, fmt.Errorf(`\u%04x is half of a surrogate pair without its other half (not a character)`, r)
	}
	return 0, 0, fmt.Errorf("unknown escape \\%c", s[1])
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// describeJSONError turns encoding/json's errors, which name Go types, into
// messages about the transaction document a user wrote; whole names the
// value being decoded when the error names no field.
func describeJSONError(err error, whole string) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return `empty input: want a JSON object like {"ops": [{"op": "put", "key": "k", "value": "v"}]}`
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON document ends too early"
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = whole
		}
		return fmt.Sprintf("%s: got %s, want %s", field, te.Value, jsonTypeName(te.Type.Kind().String()))
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int64":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return `an array of operations`
	case "struct", "ptr":
		return "an object"
	}
	return kind
}
