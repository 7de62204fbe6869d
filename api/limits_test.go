package api_test

import (
	"testing"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/format"
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
