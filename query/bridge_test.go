package query

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// The bridge (bridge.go) passes values both ways itself: an empty TEXT
// value is TEXT, not NULL; an empty BLOB is a BLOB; a key holding NUL
// reaches Filter whole; and each of several TEXT arguments of one Filter
// call is its own (they share the cursor's storage).
func TestBridgeValues(t *testing.T) {
	st := openStore(t)
	put(t, st, "empty", "", "blob", "\xff", "a\x00b", "nul", "a", "A", "b", "B", "c", "C")
	s := openSession(t, st, Options{})
	for _, c := range []struct {
		q    string
		args []any
		want []string
	}{
		{"SELECT typeof(value), length(value) FROM kv WHERE key = 'empty'", nil, []string{`"text"|0`}},
		{"SELECT typeof(value), hex(value) FROM kv WHERE key = 'blob'", nil, []string{`"blob"|"FF"`}},
		{"SELECT typeof(CAST(value AS BLOB)) FROM kv WHERE key = ?", []any{"empty"}, []string{`"blob"`}},
		{"SELECT hex(key), value FROM kv WHERE key = ?", []any{"a\x00b"}, []string{`"610062"|"nul"`}},
		{"SELECT key FROM kv WHERE key > ? AND key < ?", []any{"a\x00b", "c"}, []string{`"b"`, `"blob"`}},
		{"SELECT key FROM kv WHERE key >= ? AND key <= ? ORDER BY key DESC", []any{"a", "b"}, []string{`"b"`, `"a\x00b"`, `"a"`}},
		// A join filters the inner table once per outer row, each time
		// with another argument.
		{"SELECT a.key, b.value FROM kv AS a JOIN kv AS b ON b.key = a.value WHERE a.key IN ('a', 'b') ORDER BY 1", nil, nil},
		{"SELECT a.key, b.key FROM kv AS a JOIN kv AS b ON b.key = lower(a.value) WHERE a.key IN ('a', 'b', 'c') ORDER BY 1", nil,
			[]string{`"a"|"a"`, `"b"|"b"`, `"c"|"c"`}},
	} {
		if got := all(t, s, c.q, c.args...); !slices.Equal(got, c.want) {
			t.Errorf("%s %q:\n got %q\nwant %q", c.q, c.args, got, c.want)
		}
	}
}

// Statements of different plans take turns on the same table, whose
// cursors the bridge keeps and reuses (with the last plan it read), and
// sessions on several goroutines share the bridge's handle tables.
func TestBridgeCursorsReused(t *testing.T) {
	st := openStore(t)
	var kvs []string
	for i := range 200 {
		kvs = append(kvs, fmt.Sprintf("k%03d", i), fmt.Sprint(i))
	}
	put(t, st, kvs...)
	queries := []struct {
		q    string
		args []any
		want []string
	}{
		{"SELECT value FROM kv WHERE key = ?", []any{"k007"}, []string{`"7"`}},
		{"SELECT count(*) FROM kv WHERE key >= ? AND key < ?", []any{"k010", "k020"}, []string{"10"}},
		{"SELECT key FROM kv WHERE key > ? ORDER BY key DESC LIMIT 2", []any{"k100"}, []string{`"k199"`, `"k198"`}},
		{"SELECT count(*) FROM kv WHERE key GLOB ?", []any{"k1*"}, []string{"100"}},
		{"SELECT count(*) FROM kv", nil, []string{"200"}},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), Source{Dir: st.Dir(), Snapshot: st.Snapshot()}, Options{})
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			for i := range 50 {
				q := queries[(g+i)%len(queries)]
				got, err := queryAll(s, q.q, q.args...)
				if err != nil || !slices.Equal(got, q.want) {
					errs <- fmt.Errorf("%s %q: got %q (%v), want %q", q.q, q.args, got, err, q.want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The bridge's handle table grows past its first size, finds every value
// by its handle while other goroutines add and remove theirs, and reuses
// the handles it freed.
func TestBridgeRefs(t *testing.T) {
	var r refs[int]
	const goroutines, each = 4, 100
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vals := make([]int, each)
			hs := make([]uintptr, each)
			for i := range vals {
				vals[i] = g*each + i
				hs[i] = r.add(&vals[i])
			}
			for i, h := range hs {
				if got := r.get(h); got != &vals[i] {
					errs <- fmt.Errorf("handle %d: got %v, want value %d", h, got, vals[i])
					return
				}
			}
			for _, h := range hs {
				r.remove(h)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	size := len(*r.tab.Load())
	if size <= each { // each goroutine holds its values at once
		t.Fatalf("the table has %d slots for %d values", size, each)
	}
	v := 7
	if h := r.add(&v); h == 0 || h >= uintptr(size) || r.get(h) != &v {
		t.Fatalf("a freed handle is not reused: got handle %d of %d slots", h, size)
	}
	if r.get(0) != nil || r.get(uintptr(size)+5) != nil {
		t.Fatal("handle 0 or one past the table finds a value")
	}
}
