package query

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/replay"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// history writes random puts and deletes to st, one transaction per index,
// keeping the model of the state after each index in states.
type history struct {
	t      testing.TB
	st     *store.Store
	r      *rand.Rand
	model  map[string]string
	hashes map[uint64]uint64 // state hash after each index
}

func newHistory(t testing.TB, st *store.Store) *history {
	return &history{t: t, st: st, r: rand.New(rand.NewPCG(7, 8)), model: map[string]string{}, hashes: map[uint64]uint64{}}
}

func (h *history) write(n int) uint64 {
	var idx uint64
	for range n {
		k := fmt.Sprintf("k%02d", h.r.IntN(40))
		if _, ok := h.model[k]; ok && h.r.IntN(4) == 0 {
			idx = del(h.t, h.st, k)
			delete(h.model, k)
		} else {
			v := strconv.Itoa(h.r.IntN(1000))
			if h.r.IntN(8) == 0 {
				v = "\xfe" + v // not UTF-8: a BLOB
			}
			idx = put(h.t, h.st, k, v)
			h.model[k] = v
		}
		hs := format.NewStateHasher()
		for _, k := range sortedKeys(h.model) {
			hs.AddString(k, []byte(h.model[k]))
		}
		h.hashes[idx] = hs.Sum64()
	}
	return idx
}

// hashOf is the state hash of rows of (key, value).
func hashOf(t testing.TB, s *Session, q string) uint64 {
	t.Helper()
	rows, err := s.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	h := format.NewStateHasher()
	for rows.Next() {
		v := rows.Values()
		h.AddString(v[0].(string), bytesOf(v[1]))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return h.Sum64()
}

func bytesOf(v any) []byte {
	switch v := v.(type) {
	case string:
		return []byte(v)
	case []byte:
		return v
	}
	panic(fmt.Sprintf("value %T", v))
}

// kv_at(N) is the state `kvtool replay --to-index N` rebuilds, at indexes
// served by the base alone, by base and deltas, by base, deltas and WAL,
// and after a merge made a new base; an index the files no longer cover
// is an error naming those they do.
func TestKvAtMatchesReplay(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	h := newHistory(t, st)
	h.write(20)
	if _, err := st.Checkpoint(ctx); err != nil { // base at 20
		t.Fatal(err)
	}
	h.write(20)
	if _, err := st.Delta(ctx); err != nil { // delta (20, 40]
		t.Fatal(err)
	}
	h.write(20)
	if _, err := st.Delta(ctx); err != nil { // delta (40, 60]
		t.Fatal(err)
	}
	h.write(10)
	check := func(s *Session, ns ...uint64) {
		t.Helper()
		for _, n := range ns {
			res, err := datadir.Replay(vfs.Default, st.Dir(), datadir.ReplayOptions{ToIndex: n})
			if err != nil {
				t.Fatalf("replay --to-index %d: %v", n, err)
			}
			got := hashOf(t, s, fmt.Sprintf("SELECT key, value FROM kv_at(%d) ORDER BY key", n))
			if got != res.StateHash || got != h.hashes[n] {
				t.Errorf("kv_at(%d): hash %016x, replay --to-index says %016x, the model %016x", n, got, res.StateHash, h.hashes[n])
			}
			// The key pushdown gives the same rows inside kv_at.
			if a, b := all(t, s, fmt.Sprintf("SELECT key FROM kv_at(%d) WHERE key >= 'k1' AND key < 'k3' ORDER BY key DESC", n)),
				all(t, s, fmt.Sprintf("SELECT key FROM kv_at(%d) WHERE +key >= 'k1' AND +key < 'k3' ORDER BY +key DESC", n)); strings.Join(a, ",") != strings.Join(b, ",") {
				t.Errorf("kv_at(%d): pushed down %q, not %q", n, a, b)
			}
		}
	}
	ns := []uint64{20, 21, 30, 40, 41, 55, 60, 65, 70}
	check(openSession(t, st, Options{}), ns...)
	check(openDir(t, st.Dir(), Options{}), ns...)

	if _, err := st.Merge(ctx); err != nil { // new base at 60
		t.Fatal(err)
	}
	h.write(10)
	s := openSession(t, st, Options{})
	check(s, 60, 66, 80)
	_, err := queryAll(s, "SELECT * FROM kv_at(30)")
	if !errors.Is(err, replay.ErrNotCovered) || !strings.Contains(err.Error(), "cover indexes 60 to 80") {
		t.Errorf("kv_at(30) after the merge: %v; want a not-covered error naming 60 to 80", err)
	}
	for _, q := range []string{"SELECT * FROM kv_at(81)", "SELECT * FROM kv_at(0)", "SELECT * FROM kv_at", "SELECT * FROM kv_at('x')"} {
		if _, err := queryAll(s, q); err == nil {
			t.Errorf("%s: no error", q)
		} else {
			t.Logf("%s: %v", q, err)
		}
	}
	// kv is the live state.
	if got, want := hashOf(t, s, "SELECT key, value FROM kv ORDER BY key"), st.Snapshot().Hash(); got != want {
		t.Errorf("kv: hash %016x, the snapshot's %016x", got, want)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
