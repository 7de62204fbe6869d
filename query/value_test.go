package query

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/store"
)

// Column hands the driver the cursor's own strings and the store's own
// bytes (value.go): every value must still be right after the cursor moved
// on, wherever SQLite keeps it (a sorter, an aggregate, the rows the
// caller holds), TEXT and BLOB, empty or long, as the same keys and values
// read through Snapshot.Scan.
func TestColumnValuesOutliveTheCursor(t *testing.T) {
	st := openStore(t)
	var kvs []string
	for i := range 300 {
		v := strings.Repeat(fmt.Sprint(i%10), i%37)
		switch i % 7 {
		case 0:
			v = "\xff\x00" + v // not UTF-8: a BLOB
		case 1:
			v = ""
		}
		kvs = append(kvs, fmt.Sprintf("k%0*d", 1+i%5, i), v)
	}
	put(t, st, kvs...)
	snap := st.Snapshot()
	var keys, byValue, concat []string
	type kv struct{ k, v string }
	var pairs []kv
	snap.Scan(store.ScanOptions{}, func(k string, v []byte) bool {
		keys = append(keys, fmt.Sprintf("%q", k))
		pairs = append(pairs, kv{k, string(v)})
		return true
	})
	slices.SortStableFunc(pairs, func(a, b kv) int { return strings.Compare(a.v, b.v) })
	for _, p := range pairs {
		byValue = append(byValue, fmt.Sprintf("%q", p.k))
	}
	s := openSession(t, st, Options{})
	if got := all(t, s, "SELECT key FROM kv"); !slices.Equal(got, keys) {
		t.Errorf("keys held by the caller:\n got %q\nwant %q", got, keys)
	}
	got := all(t, s, "SELECT key FROM kv ORDER BY CAST(value AS BLOB), key")
	if !slices.Equal(got, byValue) {
		t.Errorf("keys sorted by value:\n got %q\nwant %q", got, byValue)
	}
	for _, p := range pairs {
		if p.v != "" && p.v[0] != 0xff {
			concat = append(concat, p.k+"="+p.v)
		}
	}
	slices.Sort(concat)
	rows := all(t, s, "SELECT key || '=' || value FROM kv WHERE typeof(value) = 'text' AND value <> '' ORDER BY 1")
	for i := range rows {
		rows[i] = strings.Trim(rows[i], `"`)
	}
	if !slices.Equal(rows, concat) {
		t.Errorf("key=value sorted:\n got %q\nwant %q", rows, concat)
	}
	if got := all(t, s, "SELECT count(*) FROM kv WHERE typeof(value) = 'blob'"); !slices.Equal(got, []string{"43"}) {
		t.Errorf("BLOB values: %q", got)
	}
}
