package query

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// A session keeps the statements it ran: the same text with other
// arguments, the same text while its rows are still open, more texts than
// the cache holds, and a session closed with rows open all give the rows
// a fresh statement would.
func TestStatementReuse(t *testing.T) {
	st := openStore(t)
	for i := range 50 {
		put(t, st, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	s := openSession(t, st, Options{})
	ctx := context.Background()
	const q = "SELECT value FROM kv WHERE key = ?"
	for i := range 50 {
		if got := all(t, s, q, fmt.Sprintf("k%02d", i)); !slices.Equal(got, []string{fmt.Sprintf("%q", fmt.Sprint(i))}) {
			t.Fatalf("run %d: %q", i, got)
		}
	}

	// The same text while its rows are open: another statement runs it.
	const scan = "SELECT key FROM kv WHERE key >= ? ORDER BY key"
	outer, err := s.Query(ctx, scan, "k10")
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for n := 0; n < 3 && outer.Next(); n++ {
		k := outer.Values()[0].(string)
		inner := all(t, s, scan, "k4")
		pairs = append(pairs, k+":"+inner[0]+".."+inner[len(inner)-1])
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if want := []string{`k10:"k40".."k49"`, `k11:"k40".."k49"`, `k12:"k40".."k49"`}; !slices.Equal(pairs, want) {
		t.Errorf("nested runs of one text: %q; want %q", pairs, want)
	}
	// The cached statement still runs once its rows are closed.
	if got := all(t, s, scan, "k48"); !slices.Equal(got, []string{`"k48"`, `"k49"`}) {
		t.Errorf("after the nested runs: %q", got)
	}

	// More texts than the cache keeps, each run twice, the first still
	// open while the rest run.
	held, err := s.Query(ctx, "SELECT count(*) FROM kv WHERE key < ?", "k05")
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		for i := range stmtCacheSize + 5 {
			q := fmt.Sprintf("SELECT %d, value FROM kv WHERE key = ?", i)
			if got := all(t, s, q, "k07"); !slices.Equal(got, []string{fmt.Sprintf(`%d|"7"`, i)}) {
				t.Fatalf("round %d, text %d: %q", round, i, got)
			}
		}
	}
	if len(s.stmts.m) > stmtCacheSize {
		t.Errorf("the cache holds %d statements, more than %d", len(s.stmts.m), stmtCacheSize)
	}
	if !held.Next() || held.Values()[0] != int64(5) {
		t.Fatalf("the rows held open meanwhile: %v %v", held.Values(), held.Err())
	}

	// A prepared statement closed while its rows are open is released
	// when they close; the session closes with rows still open.
	p, err := s.Prepare(ctx, "SELECT key FROM kv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := p.Query(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if !rows.Next() || rows.Values()[0] != "k00" {
		t.Fatalf("rows of a closed statement: %v %v", rows.Values(), rows.Err())
	}
	rows.Close()
	open, err := s.Query(ctx, "SELECT key FROM kv")
	if err != nil {
		t.Fatal(err)
	}
	open.Next()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if open.Next() {
		t.Error("rows still read after their session closed")
	}
	if _, err := s.Query(ctx, q, "k01"); err == nil {
		t.Error("a closed session ran a query")
	}
}
