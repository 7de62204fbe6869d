package query

import (
	"context"
	"slices"
	"testing"
)

// A pooled session reset to another source reads only that source: its
// kv, its kv_at states and its files, with its prepared statements still
// working; an idle session holds no snapshot; one given back with rows
// open is closed, not kept.
func TestPoolResetsSessions(t *testing.T) {
	a, b := openStore(t), openStore(t)
	put(t, a, "k", "from a", "only-a", "1")
	put(t, a, "k", "a again")
	put(t, b, "k", "from b")
	p := NewPool(1, Options{})
	ctx := context.Background()
	get := func(src Source) *Session {
		t.Helper()
		s, err := p.Get(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const q = `SELECT (SELECT group_concat(key || '=' || value) FROM kv), (SELECT value FROM kv_at(1) WHERE key = 'k'),
		(SELECT count(*) FROM wal), (SELECT count(*) FROM segments)`
	s := get(Source{Dir: a.Dir(), Snapshot: a.Snapshot()})
	if got := all(t, s, q); !slices.Equal(got, []string{`"k=a again,only-a=1"|"from a"|3|1`}) {
		t.Fatalf("store a: %q", got)
	}
	p.Put(s)
	if s.src.Snapshot != nil || s.live != nil || len(s.states) != 0 {
		t.Error("an idle session still holds its last source's state")
	}
	s2 := get(Source{Dir: b.Dir(), Snapshot: b.Snapshot()})
	if s2 != s {
		t.Error("the pool opened a session instead of reusing its idle one")
	}
	if got := all(t, s2, q); !slices.Equal(got, []string{`"k=from b"|"from b"|1|1`}) {
		t.Errorf("store b on a reused session: %q", got)
	}
	// From b's directory alone, kv is rebuilt from b's files.
	p.Put(s2)
	s3 := get(Source{Dir: b.Dir()})
	if got := all(t, s3, "SELECT value FROM kv"); !slices.Equal(got, []string{`"from b"`}) {
		t.Errorf("b's directory on a reused session: %q", got)
	}
	// Given back with rows open, a session is closed.
	rows, err := s3.Query(ctx, "SELECT key FROM kv")
	if err != nil {
		t.Fatal(err)
	}
	p.Put(s3)
	if s3.conn != nil {
		t.Error("a session given back with rows open was kept")
	}
	rows.Close()
	s4 := get(Source{Dir: a.Dir(), Snapshot: a.Snapshot()})
	defer s4.Close()
	if s4 == s3 {
		t.Error("the pool handed out a closed session")
	}
	if got := all(t, s4, "SELECT count(*) FROM kv"); !slices.Equal(got, []string{"2"}) {
		t.Errorf("a fresh session: %q", got)
	}
}
