package server

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/store"
)

// TestScanOutside compares scanOutside with a filter over the whole scan,
// for ranges and limits on both sides of the hidden keys and across them.
func TestScanOutside(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir(), Create: true, Shards: 3, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hidden := cluster.DedupPrefix
	keys := []string{"a", "b", "c", "\xff\xff", hidden, hidden + "id/1", hidden + "slot/2", prefixEnd(hidden), "\xff\xffz", "\xff\xff\xff"}
	for _, k := range keys {
		if _, err := st.Put(context.Background(), k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	snap := st.Snapshot()
	bounds := []string{"", "b", "\xff\xff", hidden, hidden + "id/", prefixEnd(hidden), "\xff\xffz", "\xff\xff\xff\xff"}
	for _, start := range bounds {
		for _, end := range bounds {
			for _, prefix := range []string{"", "\xff\xff", hidden, "c"} {
				for limit := range 8 {
					o := store.ScanOptions{Prefix: prefix, Start: start, End: end, Limit: limit}
					var want, got []string
					snap.Scan(store.ScanOptions{Prefix: prefix, Start: start, End: end}, func(k string, _ []byte) bool {
						if !strings.HasPrefix(k, hidden) && (limit == 0 || len(want) < limit) {
							want = append(want, k)
						}
						return true
					})
					scanOutside(snap, o, hidden, func(k string, _ []byte) bool { got = append(got, k); return true })
					if !slices.Equal(got, want) {
						t.Fatalf("prefix %q start %q end %q limit %d: got %q, want %q", prefix, start, end, limit, got, want)
					}
				}
			}
		}
	}
}
