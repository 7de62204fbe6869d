package query

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// diff equals the difference of two kv_at results, computed here from
// their rows, with and without a prefix (one of them past every key).
func TestDiffMatchesKvAt(t *testing.T) {
	st := openStore(t)
	h := newHistory(t, st)
	h.write(30)
	if _, err := st.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.write(30)
	put(t, st, "k\xff\xff", "1", "k\x00", "2", "k0", "\xfe")
	h.write(10)
	s := openSession(t, st, Options{})
	for _, c := range []struct{ from, to uint64 }{{30, 60}, {35, 71}, {71, 35}, {40, 40}, {31, 71}, {30, 71}} {
		for _, prefix := range []string{"", "k1", "k\xff", "k0", "zz"} {
			got := all(t, s, DiffQuery(c.from, c.to, prefix))
			want := diffOf(t, s, c.from, c.to, prefix)
			if !slices.Equal(got, want) {
				t.Errorf("diff %d..%d prefix %q:\n got %q\nwant %q", c.from, c.to, prefix, got, want)
			}
			if c.from != c.to && prefix == "" && len(got) == 0 {
				t.Errorf("diff %d..%d is empty; the test wants changes", c.from, c.to)
			}
		}
	}
}

// diffOf computes the diff from the rows of kv_at(from) and kv_at(to).
func diffOf(t *testing.T, s *Session, from, to uint64, prefix string) []string {
	state := func(n uint64) map[string]string {
		m := map[string]string{}
		for _, row := range all(t, s, fmt.Sprintf("SELECT key, value FROM kv_at(%d)", n)) {
			k, v, _ := strings.Cut(row, "|")
			m[unquote(t, k)] = v
		}
		return m
	}
	a, b := state(from), state(to)
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []string
	for _, k := range sortedKeys(keys) {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		q := fmt.Sprintf("%q", k)
		av, inA := a[k]
		bv, inB := b[k]
		switch {
		case !inA:
			out = append(out, fmt.Sprintf(`"added"|%s|NULL|%s`, q, bv))
		case !inB:
			out = append(out, fmt.Sprintf(`"removed"|%s|%s|NULL`, q, av))
		case av != bv:
			out = append(out, fmt.Sprintf(`"changed"|%s|%s|%s`, q, av, bv))
		}
	}
	return out
}

func unquote(t *testing.T, s string) string {
	var u string
	if _, err := fmt.Sscanf(s, "%q", &u); err != nil {
		t.Fatalf("unquote %s: %v", s, err)
	}
	return u
}
