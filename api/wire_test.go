package api

import (
	"encoding/json"
	"testing"
)

func TestPairJSON(t *testing.T) {
	cases := []struct {
		p    Pair
		json string
	}{
		{Pair{"k", []byte("v")}, `{"key":"k","value":"v"}`},
		{Pair{"k", []byte{}}, `{"key":"k","value":""}`},
		{Pair{"k", []byte{0xff, 0}}, `{"key":"k","value_base64":"/wA="}`},
		{Pair{"\xfe", []byte("v")}, `{"key_base64":"/g==","value":"v"}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.p)
		if err != nil || string(b) != c.json {
			t.Errorf("marshal %q: %s, %v; want %s", c.p.Key, b, err, c.json)
		}
		var back Pair
		if err := json.Unmarshal(b, &back); err != nil || back.Key != c.p.Key || string(back.Value) != string(c.p.Value) {
			t.Errorf("round trip of %s: %+v, %v", c.json, back, err)
		}
	}
	var p Pair
	if err := json.Unmarshal([]byte(`{"key":"k","value_base64":"!"}`), &p); err == nil {
		t.Error("bad base64 accepted")
	}
}
