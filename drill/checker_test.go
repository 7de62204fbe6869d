package drill

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/store"
)

// mapState is a State held in a map, for planting anomalies.
type mapState map[string][]byte

func (m mapState) Scan(_ context.Context, prefix string, fn func(string, []byte) bool) error {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !fn(k, m[k]) {
			break
		}
	}
	return nil
}

// mapTarget applies bank transactions to a mapState, aborting on a failed
// check, and answers with an error for the transfers in fail.
type mapTarget struct {
	m    mapState
	idx  uint64
	fail map[uint64]bool // transfer IDs to answer with an error after applying
}

func (t *mapTarget) Commit(_ context.Context, txn *store.Txn) (uint64, error) {
	next := mapState{}
	get := func(k string) int64 {
		v, ok := next[k]
		if !ok {
			v = t.m[k]
		}
		n, _ := strconv.ParseInt(string(v), 10, 64)
		return n
	}
	var marker uint64
	for _, op := range txn.Ops {
		switch op.Kind {
		case store.OpPut:
			next[op.Key] = op.Value
			if id, ok := parseMarkerKey(op.Key); ok {
				marker = id
			}
		case store.OpAdd:
			next[op.Key] = []byte(strconv.FormatInt(get(op.Key)+op.Delta, 10))
		case store.OpCheck:
			if get(op.Key) < op.Min {
				return 0, ErrAborted
			}
		}
	}
	for k, v := range next {
		t.m[k] = v
	}
	t.idx++
	if t.fail[marker] {
		return 0, errors.New("no answer")
	}
	return t.idx, nil
}

// plantedBank runs a bank of 5 accounts for 200 transfers on a map, the
// transfers 7 and 8 answered with an error (applied, in doubt).
func plantedBank(t *testing.T) (*Bank, mapState) {
	t.Helper()
	b := NewBank(5, 100, 3)
	tgt := &mapTarget{m: mapState{}, fail: map[uint64]bool{7: true, 8: true}}
	if err := b.Setup(context.Background(), tgt); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b.Attempt(context.Background(), tgt, rng)
	}
	st := b.Stats()
	if st.Acked < 50 || st.Aborted == 0 || st.Unknown != 2 {
		t.Fatalf("the planted bank did not exercise every outcome: %+v", st)
	}
	return b, tgt.m
}

// firstAborted returns the ID of an aborted transfer.
func firstAborted(b *Bank) uint64 {
	for id := range b.aborted {
		return id
	}
	return 0
}

// ackedID returns the ID of the n-th acknowledged transfer.
func ackedID(b *Bank, n int) uint64 { return b.ackSeq[n+1] }

// TestCheckerCatches plants every anomaly the checker exists to catch in a
// correct state and checks each is reported, and that the correct state
// passes.
func TestCheckerCatches(t *testing.T) {
	ctx := context.Background()
	b, good := plantedBank(t)
	clone := func() mapState {
		m := mapState{}
		for k, v := range good {
			m[k] = v
		}
		return m
	}
	rep, err := Check(ctx, b.All(), good)
	if err != nil || !rep.OK() {
		t.Fatalf("the correct state fails the check: %v %v", err, rep.Err())
	}
	if rep.InDoubt != 2 || rep.Acked != b.Stats().Acked {
		t.Errorf("correct state: %d in doubt, %d acknowledged; want 2 and %d", rep.InDoubt, rep.Acked, b.Stats().Acked)
	}
	x := b.tried[ackedID(b, 3)]
	cases := []struct {
		name  string
		plant func(m mapState)
		lost  int
		want  string
	}{
		{"acknowledged transfer lost whole", func(m mapState) {
			// Undo transfer x entirely: marker and balances.
			delete(m, MarkerKey(x.ID))
			m[AccountKey(x.From)] = add(m[AccountKey(x.From)], x.Amount)
			m[AccountKey(x.To)] = add(m[AccountKey(x.To)], -x.Amount)
		}, 1, "acknowledged transfers lost"},
		{"transfer applied in part (marker without balances)", func(m mapState) {
			m[AccountKey(x.From)] = add(m[AccountKey(x.From)], x.Amount)
		}, 0, "applied in part or twice"},
		{"transfer applied twice", func(m mapState) {
			m[AccountKey(x.From)] = add(m[AccountKey(x.From)], -x.Amount)
			m[AccountKey(x.To)] = add(m[AccountKey(x.To)], x.Amount)
		}, 0, "applied in part or twice"},
		{"aborted transfer present", func(m mapState) {
			a := b.tried[firstAborted(b)]
			m[MarkerKey(a.ID)] = []byte(b.markerValue(a))
			m[AccountKey(a.From)] = add(m[AccountKey(a.From)], -a.Amount)
			m[AccountKey(a.To)] = add(m[AccountKey(a.To)], a.Amount)
		}, 0, "its check aborted it"},
		{"transfer never attempted present", func(m mapState) {
			m[MarkerKey(100000)] = []byte("0,1,5ppp")
		}, 0, "never attempted"},
		{"marker value changed", func(m mapState) {
			m[MarkerKey(x.ID)] = []byte("changed")
		}, 1, "holds"},
		{"money created", func(m mapState) {
			m[AccountKey(0)] = add(m[AccountKey(0)], 1)
		}, 0, "in all"},
		{"account missing", func(m mapState) { delete(m, AccountKey(2)) }, 0, "is missing"},
		{"everything lost", func(m mapState) {
			for k := range m {
				delete(m, k)
			}
		}, b.Stats().Acked, "acknowledged transfers lost"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := clone()
			tc.plant(m)
			rep, err := Check(ctx, b.All(), m)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || len(rep.Lost) != tc.lost || !strings.Contains(rep.Err().Error(), tc.want) {
				t.Errorf("got %d lost, %v; want %d lost and %q", len(rep.Lost), rep.Err(), tc.lost, tc.want)
			}
		})
	}
}

func add(v []byte, d int64) []byte {
	n, _ := strconv.ParseInt(string(v), 10, 64)
	return []byte(strconv.FormatInt(n+d, 10))
}

// TestCheckerPrefix checks a record of the first n acknowledgements: a
// state that lacks the later ones passes, and an empty state passes only
// before the accounts were acknowledged.
func TestCheckerPrefix(t *testing.T) {
	ctx := context.Background()
	b, good := plantedBank(t)
	empty := mapState{}
	if rep, _ := Check(ctx, Record{b: b, n: 0}, empty); !rep.OK() {
		t.Errorf("empty state before any acknowledgement: %v", rep.Err())
	}
	if rep, _ := Check(ctx, Record{b: b, n: 1}, empty); rep.OK() {
		t.Errorf("empty state after the accounts were acknowledged passes")
	}
	// The good state holds every transfer, so it passes any prefix.
	for _, n := range []int{1, 10, len(b.ackSeq)} {
		if rep, _ := Check(ctx, Record{b: b, n: n}, good); !rep.OK() {
			t.Errorf("prefix %d: %v", n, rep.Err())
		}
	}
}

// TestCheckerReportedLost checks the repair report rule: transfers at the
// reported indexes must be absent, every other one present.
func TestCheckerReportedLost(t *testing.T) {
	ctx := context.Background()
	b, good := plantedBank(t)
	x := b.tried[ackedID(b, 5)]
	xIdx := b.index[x.ID]
	// Remove x as a repair would (the state is a prefix only in a real
	// log, but the rule is per transfer).
	m := mapState{}
	for k, v := range good {
		m[k] = v
	}
	delete(m, MarkerKey(x.ID))
	m[AccountKey(x.From)] = add(m[AccountKey(x.From)], x.Amount)
	m[AccountKey(x.To)] = add(m[AccountKey(x.To)], -x.Amount)
	reported := func(i uint64) bool { return i == xIdx }
	if rep, _ := Check(ctx, b.All().WithReportedLost(reported), m); !rep.OK() || rep.Excused != 1 {
		t.Errorf("a reported removal: %v, %d excused", rep.Err(), rep.Excused)
	}
	if rep, _ := Check(ctx, b.All().WithReportedLost(func(uint64) bool { return false }), m); rep.OK() {
		t.Errorf("an unreported removal passes")
	}
	if rep, _ := Check(ctx, b.All().WithReportedLost(reported), good); rep.OK() {
		t.Errorf("a transfer reported removed but present passes")
	}
}

// TestSameState checks the comparison of copies.
func TestSameState(t *testing.T) {
	if err := SameState([]string{"a", "b"}, []uint64{5, 5}, []uint64{9, 9}); err != nil {
		t.Error(err)
	}
	if err := SameState([]string{"a", "b"}, []uint64{5, 5}, []uint64{9, 8}); err == nil {
		t.Error("different hashes pass")
	}
	if err := SameState([]string{"a", "b"}, []uint64{5, 6}, []uint64{9, 9}); err == nil {
		t.Error("different indexes pass")
	}
}
