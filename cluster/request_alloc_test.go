//go:build !race

package cluster

import (
	"fmt"
	"testing"
)

// TestDecodeBatchAllocs: decoding a batch of one-put requests (what every
// member does with every batch it applies) costs four allocations a
// request (the request with its transaction and operation, its ID, key
// and value) and one for the slice (the race detector changes the
// counts: not under it).
func TestDecodeBatchAllocs(t *testing.T) {
	const size = 8
	var reqs []*request
	for i := range size {
		reqs = append(reqs, batchReq(fmt.Sprint("id-", i), fmt.Sprint("key-", i), "a value of some size"))
	}
	b := encodeBatch(reqs)
	n := testing.AllocsPerRun(100, func() {
		if _, err := decodeBatch(b); err != nil {
			t.Fatal(err)
		}
	})
	if want := float64(4*size + 1); n > want {
		t.Errorf("decodeBatch of %d one-put requests: %v allocations, want at most %v", size, n, want)
	}
}
