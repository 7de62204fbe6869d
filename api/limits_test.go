package api_test

import (
	"testing"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/txncheck"
	"github.com/kvtool/kvtool/store"
)

// TestLimitsMatchStore: the API refuses exactly what the store would: its
// limits, repeated so the client does not link the store, are the store's.
func TestLimitsMatchStore(t *testing.T) {
	for _, c := range []struct {
		name      string
		api, want int
	}{
		{"MaxKeySize", api.MaxKeySize, format.MaxKeySize},
		{"MaxValueSize", api.MaxValueSize, format.MaxValueSize},
		{"MaxTxnOps", api.MaxTxnOps, format.MaxTxnOps},
		{"MaxTxnBytes", api.MaxTxnBytes, store.MaxTxnBytes},
	} {
		if c.api != c.want {
			t.Errorf("api.%s = %d, the store's is %d", c.name, c.api, c.want)
		}
	}
}

// TestKindsMatchStore: the API and the store number their op and check
// kinds alike, as txncheck, which validates both, takes them.
func TestKindsMatchStore(t *testing.T) {
	ops := []struct{ api, store uint8 }{
		{uint8(api.OpPut), uint8(store.OpPut)}, {uint8(api.OpDelete), uint8(store.OpDelete)},
		{uint8(api.OpAdd), uint8(store.OpAdd)}, {uint8(api.OpCheck), uint8(store.OpCheck)},
	}
	checks := []struct{ api, store uint8 }{
		{uint8(api.CheckExists), uint8(store.CheckExists)}, {uint8(api.CheckAbsent), uint8(store.CheckAbsent)},
		{uint8(api.CheckEquals), uint8(store.CheckEquals)}, {uint8(api.CheckMin), uint8(store.CheckMin)},
	}
	for i, k := range ops {
		if k.api != k.store || k.api != txncheck.OpPut+uint8(i) {
			t.Errorf("op kind %d: api %d, store %d, txncheck wants %d", i, k.api, k.store, txncheck.OpPut+i)
		}
	}
	for i, k := range checks {
		if k.api != k.store || k.api != txncheck.CheckFirst+uint8(i) {
			t.Errorf("check kind %d: api %d, store %d, txncheck wants %d", i, k.api, k.store, txncheck.CheckFirst+i)
		}
	}
	if txncheck.OpCheck != api.OpCheck || txncheck.CheckLast != api.CheckMin {
		t.Errorf("txncheck's last kinds are %d and %d", txncheck.OpCheck, txncheck.CheckLast)
	}
}
