package format

import (
	"bytes"
	"testing"
)

func TestTxnRecordRoundTrip(t *testing.T) {
	effects := []TxnEffect{
		{Kind: TxnPut, Key: "a", Value: []byte("1")},
		{Kind: TxnDelete, Key: "b"},
		{Kind: TxnPut, Key: "c", Value: []byte{}},
		{Kind: TxnPut, Key: string(make([]byte, MaxKeySize)), Value: make([]byte, 300)},
	}
	b := AppendTxnRecord(nil, effects)
	if len(b) != TxnRecordSize(effects) {
		t.Fatalf("size %d, TxnRecordSize says %d", len(b), TxnRecordSize(effects))
	}
	var got []TxnEffect
	err := DecodeTxnRecord(b, func(kind uint8, key, value []byte) {
		got = append(got, TxnEffect{Kind: kind, Key: string(key), Value: bytes.Clone(value)})
	})
	if err != nil || len(got) != len(effects) {
		t.Fatalf("decoded %d effects, %v", len(got), err)
	}
	for i := range got {
		if got[i].Kind != effects[i].Kind || got[i].Key != effects[i].Key || !bytes.Equal(got[i].Value, effects[i].Value) {
			t.Errorf("effect %d = %+v, want %+v", i, got[i], effects[i])
		}
	}
	// Every truncation is an error, never a shorter record.
	for n := 0; n < len(b); n++ {
		if err := DecodeTxnRecord(b[:n], func(uint8, []byte, []byte) {}); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
}

func FuzzDecodeTxnRecord(f *testing.F) {
	f.Add(AppendTxnRecord(nil, []TxnEffect{{Kind: TxnPut, Key: "k", Value: []byte("v")}, {Kind: TxnDelete, Key: "d"}}))
	f.Add([]byte{0})
	f.Add([]byte{1, 3, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var effects []TxnEffect
		err := DecodeTxnRecord(data, func(kind uint8, key, value []byte) {
			if len(key) > MaxKeySize || len(value) > MaxValueSize {
				t.Fatalf("effect past the limits: key %d, value %d bytes", len(key), len(value))
			}
			effects = append(effects, TxnEffect{Kind: kind, Key: string(key), Value: bytes.Clone(value)})
		})
		if err != nil {
			return
		}
		// A record that decodes re-encodes to the same bytes.
		if again := AppendTxnRecord(nil, effects); !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, data)
		}
	})
}
