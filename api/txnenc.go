package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// wireOp is the JSON of an Op as MarshalJSON writes it: of the text and
// _base64 forms of a key or value exactly one is set, the text form when
// the bytes are valid UTF-8 (a JSON string carries only UTF-8 text, and
// ParseTxnJSON refuses one that is not).
type wireOp struct {
	Op           string  `json:"op"`
	Key          string  `json:"key,omitempty"`
	KeyBase64    string  `json:"key_base64,omitempty"`
	Value        *string `json:"value,omitempty"`
	ValueBase64  *string `json:"value_base64,omitempty"`
	Delta        *int64  `json:"delta,omitempty"`
	Exists       *bool   `json:"exists,omitempty"`
	Equals       *string `json:"equals,omitempty"`
	EqualsBase64 *string `json:"equals_base64,omitempty"`
	Min          *int64  `json:"min,omitempty"`
}

// MarshalJSON encodes op in the transaction JSON of the CLI contract. An
// op no server would accept (an unknown kind) is an error wrapping
// ErrInvalid; sizes are left to the server.
func (op Op) MarshalJSON() ([]byte, error) {
	w, err := op.wire()
	if err != nil {
		return nil, err
	}
	return json.Marshal(w)
}

// MarshalJSON encodes t as {"ops": [...]}.
func (t Txn) MarshalJSON() ([]byte, error) {
	var doc struct {
		Ops []wireOp `json:"ops"`
	}
	if t.Ops != nil {
		doc.Ops = make([]wireOp, len(t.Ops))
	}
	for i, op := range t.Ops {
		w, err := op.wire()
		if err != nil {
			return nil, fmt.Errorf("op %d: %w", i, err)
		}
		doc.Ops[i] = w
	}
	return json.Marshal(doc)
}

// UnmarshalJSON decodes t with ParseTxnJSON: strictly, and validated.
func (t *Txn) UnmarshalJSON(b []byte) error {
	parsed, err := ParseTxnJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	*t = *parsed
	return nil
}

// UnmarshalJSON decodes one operation as ParseTxnJSON decodes each of a
// transaction's.
func (op *Op) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var jo jsonOp
	if err := dec.Decode(&jo); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, describeJSONError(err, "the operation"))
	}
	o, err := jo.toOp()
	if err == nil {
		err = o.validate()
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	*op = o
	return nil
}

// wire returns op's JSON form.
func (op Op) wire() (wireOp, error) {
	var w wireOp
	if utf8.ValidString(op.Key) {
		w.Key = op.Key
	} else {
		w.KeyBase64 = base64.StdEncoding.EncodeToString([]byte(op.Key))
	}
	switch op.Kind {
	case OpPut:
		w.Op = "put"
		w.Value, w.ValueBase64 = text(op.Value)
	case OpDelete:
		w.Op = "del"
	case OpAdd:
		w.Op, w.Delta = "add", &op.Delta
	case OpCheck:
		w.Op = "check"
		return w, op.wireCheck(&w)
	default:
		return w, fmt.Errorf("%w: unknown op kind %d", ErrInvalid, op.Kind)
	}
	return w, nil
}

// wireCheck sets the one field that says what a check requires.
func (op Op) wireCheck(w *wireOp) error {
	switch op.Check {
	case CheckExists, CheckAbsent:
		exists := op.Check == CheckExists
		w.Exists = &exists
	case CheckEquals:
		w.Equals, w.EqualsBase64 = text(op.Value)
	case CheckMin:
		w.Min = &op.Min
	default:
		return fmt.Errorf("%w: unknown check kind %d", ErrInvalid, op.Check)
	}
	return nil
}

// text returns v as a JSON string field: as text, or as base64 of bytes
// that are not UTF-8. Exactly one of the two results is set.
func text(v []byte) (*string, *string) {
	if utf8.Valid(v) {
		s := string(v)
		return &s, nil
	}
	b := base64.StdEncoding.EncodeToString(v)
	return nil, &b
}
