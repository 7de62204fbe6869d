package query

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// A scan calls the Source's Yield every cursorYield rows, from the
// query's own goroutine, on every kind of table (kv, wal, kv_at); a
// session reset to a source without one stops calling it.
func TestScanCallsYield(t *testing.T) {
	st := openStore(t)
	const n = 1000
	var kvs []string
	for i := range n {
		kvs = append(kvs, fmt.Sprintf("k%04d", i), "v")
	}
	put(t, st, kvs...)
	calls := 0
	p := NewPool(1, Options{})
	s, err := p.Get(context.Background(), Source{Dir: st.Dir(), Snapshot: st.Snapshot(), Yield: func() { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SELECT count(*), sum(length(value)) FROM kv", "SELECT count(key) FROM wal", "SELECT count(value) FROM kv_at(1)"} {
		calls = 0
		if got := all(t, s, q); !slices.Equal(got, []string{fmt.Sprint(n)}) && !slices.Equal(got, []string{fmt.Sprintf("%d|%d", n, n)}) {
			t.Fatalf("%s: %q", q, got)
		}
		if calls < n/cursorYield {
			t.Errorf("%s: Yield called %d times over %d rows; want at least %d", q, calls, n, n/cursorYield)
		}
	}
	p.Put(s)
	s, err = p.Get(context.Background(), Source{Dir: st.Dir(), Snapshot: st.Snapshot()})
	if err != nil {
		t.Fatal(err)
	}
	calls = 0
	all(t, s, "SELECT count(value) FROM kv")
	if calls != 0 {
		t.Errorf("a session reset to a source without Yield called the old one %d times", calls)
	}
	p.Put(s)
}

// Without a Source.Yield, a scan lets other goroutines run once per
// goschedEvery, however often it looks.
func TestGoschedEvery(t *testing.T) {
	var s Session
	now, n := int64(goschedEvery), 0
	for range 1000 {
		now += int64(goschedEvery) / 10
		if s.goschedDue(now) {
			n++
		}
	}
	if n < 99 || n > 101 {
		t.Errorf("%d Gosched over 100 periods of goschedEvery", n)
	}
}
