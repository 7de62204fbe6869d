package client

import (
	"encoding/base64"
	"unicode/utf8"
)

// Op is one operation of a transaction in the JSON form of the CLI
// contract. Build them with PutOp, DelOp, AddOp and the Check constructors:
// they send a key or value that is not valid UTF-8 in its _base64 form,
// so every byte arrives as given (a JSON string can only carry UTF-8
// text, and the server refuses one that is not).
type Op struct {
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

// TxnRequest is the body of POST /v1/txn.
type TxnRequest struct {
	Ops []Op `json:"ops"`
}

// keyed returns an op of kind op on key, in text or base64 form.
func keyed(op, key string) Op {
	if utf8.ValidString(key) {
		return Op{Op: op, Key: key}
	}
	return Op{Op: op, KeyBase64: base64.StdEncoding.EncodeToString([]byte(key))}
}

// text returns v as a JSON string field (text, or base64 of bytes that
// are not UTF-8): exactly one of the two results is set.
func text(v string) (*string, *string) {
	if utf8.ValidString(v) {
		return &v, nil
	}
	b := base64.StdEncoding.EncodeToString([]byte(v))
	return nil, &b
}

// PutOp sets key to value.
func PutOp(key, value string) Op {
	op := keyed("put", key)
	op.Value, op.ValueBase64 = text(value)
	return op
}

// DelOp removes key.
func DelOp(key string) Op { return keyed("del", key) }

// AddOp adds delta to the decimal integer at key (a missing key is 0).
func AddOp(key string, delta int64) Op {
	op := keyed("add", key)
	op.Delta = &delta
	return op
}

// CheckMinOp aborts the transaction unless key holds an integer >= min.
func CheckMinOp(key string, min int64) Op {
	op := keyed("check", key)
	op.Min = &min
	return op
}

// CheckExistsOp aborts the transaction unless key's presence is exists.
func CheckExistsOp(key string, exists bool) Op {
	op := keyed("check", key)
	op.Exists = &exists
	return op
}

// CheckEqualsOp aborts the transaction unless key holds exactly value.
func CheckEqualsOp(key, value string) Op {
	op := keyed("check", key)
	op.Equals, op.EqualsBase64 = text(value)
	return op
}
