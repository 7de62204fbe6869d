package client

// Op is one operation of a transaction in the JSON form of the CLI
// contract. Build them with PutOp, DelOp, AddOp and the Check constructors.
type Op struct {
	Op     string  `json:"op"`
	Key    string  `json:"key"`
	Value  *string `json:"value,omitempty"`
	Delta  *int64  `json:"delta,omitempty"`
	Exists *bool   `json:"exists,omitempty"`
	Equals *string `json:"equals,omitempty"`
	Min    *int64  `json:"min,omitempty"`
}

// TxnRequest is the body of POST /v1/txn.
type TxnRequest struct {
	Ops []Op `json:"ops"`
}

// PutOp sets key to value.
func PutOp(key, value string) Op { return Op{Op: "put", Key: key, Value: &value} }

// DelOp removes key.
func DelOp(key string) Op { return Op{Op: "del", Key: key} }

// AddOp adds delta to the decimal integer at key (a missing key is 0).
func AddOp(key string, delta int64) Op { return Op{Op: "add", Key: key, Delta: &delta} }

// CheckMinOp aborts the transaction unless key holds an integer >= min.
func CheckMinOp(key string, min int64) Op { return Op{Op: "check", Key: key, Min: &min} }

// CheckExistsOp aborts the transaction unless key's presence is exists.
func CheckExistsOp(key string, exists bool) Op { return Op{Op: "check", Key: key, Exists: &exists} }

// CheckEqualsOp aborts the transaction unless key holds exactly value.
func CheckEqualsOp(key, value string) Op { return Op{Op: "check", Key: key, Equals: &value} }
