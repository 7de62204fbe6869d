package drill

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/store"
)

// The checker proves what a drill claims, from two things only: the
// workload's Record of what was acknowledged, and a State read after
// recovery. It holds the state to the bank's rules:
//
//   - every acknowledged transfer is present (unless a repair reported its
//     index removed, and then it is absent), with exactly the value it put;
//   - no transfer aborted by its check is present, nor one never attempted;
//   - every balance is exactly the initial amount moved by the transfers
//     present, so each present transfer applied exactly once and none in
//     part; no balance is negative and the total is unchanged.
//
// Transfers answered with an error (or not at all) may be present or not.

// State is a key space the checker reads: a recovered store's snapshot, a
// live server, a replayed directory.
type State interface {
	// Scan calls fn for each key with prefix, in key order, until fn
	// returns false.
	Scan(ctx context.Context, prefix string, fn func(key string, value []byte) bool) error
}

// SnapshotState reads a store snapshot.
type SnapshotState struct{ S *store.Snapshot }

// Scan implements State.
func (s SnapshotState) Scan(_ context.Context, prefix string, fn func(string, []byte) bool) error {
	s.S.Scan(store.ScanOptions{Prefix: prefix}, fn)
	return nil
}

// ServerState reads a live server over HTTP.
type ServerState struct{ C *client.Client }

// Scan implements State.
func (s ServerState) Scan(ctx context.Context, prefix string, fn func(string, []byte) bool) error {
	return s.C.Scan(ctx, client.ScanOptions{Prefix: prefix}, func(p client.Pair) bool { return fn(p.Key, p.Value) })
}

// Report is what the checker found.
type Report struct {
	Acked    int      // acknowledged transfers the record holds
	Present  int      // transfers present in the state
	InDoubt  int      // present, but not acknowledged in the record (answered with an error, or later)
	Excused  int      // acknowledged, absent, and reported removed by a repair
	Lost     []uint64 // acknowledged transfers absent (or changed) without a report saying so
	Problems []string // every other violation, for a person
}

// OK reports whether the state obeys every rule.
func (r *Report) OK() bool { return len(r.Lost) == 0 && len(r.Problems) == 0 }

// maxShown bounds the IDs and problems an error message lists.
const maxShown = 5

// Err describes the violations, or is nil.
func (r *Report) Err() error {
	if r.OK() {
		return nil
	}
	var parts []string
	if n := len(r.Lost); n > 0 {
		ids := make([]string, 0, maxShown)
		for _, id := range r.Lost[:min(n, maxShown)] {
			ids = append(ids, strconv.FormatUint(id, 10))
		}
		more := ""
		if n > maxShown {
			more = ", ..."
		}
		parts = append(parts, fmt.Sprintf("%d acknowledged transfers lost (ids %s%s)", n, strings.Join(ids, ", "), more))
	}
	parts = append(parts, r.Problems[:min(len(r.Problems), maxShown)]...)
	if n := len(r.Problems); n > maxShown {
		parts = append(parts, fmt.Sprintf("and %d more problems", n-maxShown))
	}
	return errors.New(strings.Join(parts, "; "))
}

func (r *Report) problemf(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Check reads st and holds it to the rules above against rec. The error is
// for a state that could not be read; violations are in the Report.
func Check(ctx context.Context, rec Record, st State) (*Report, error) {
	present, err := readMarkers(ctx, st)
	if err != nil {
		return nil, err
	}
	balances, err := readAccounts(ctx, st)
	if err != nil {
		return nil, err
	}
	b := rec.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	rep := &Report{Present: len(present)}
	setup := rec.n > 0 && b.ackSeq[0] == setupID
	checkAcked(rep, rec, present)
	want, ok := checkPresent(rep, rec, present)
	if ok {
		checkBalances(rep, b, balances, want, setup || len(present) > 0)
	}
	return rep, nil
}

// checkAcked checks that every acknowledged transfer is present, or absent
// if a repair reported its index removed. The caller holds the bank's lock.
func checkAcked(rep *Report, rec Record, present map[uint64][]byte) {
	b := rec.b
	for _, id := range b.ackSeq[:rec.n] {
		if id == setupID {
			continue
		}
		rep.Acked++
		_, ok := present[id]
		if rec.lost != nil && rec.lost(b.index[id]) {
			if ok {
				rep.problemf("transfer %d (index %d) is present, but the repair reported its index removed", id, b.index[id])
			} else {
				rep.Excused++
			}
			continue
		}
		if !ok {
			rep.Lost = append(rep.Lost, id)
		}
	}
}

// checkPresent checks every transfer present and returns the balances they
// imply. ok is false if a transfer present cannot be accounted for. The
// caller holds the bank's lock.
func checkPresent(rep *Report, rec Record, present map[uint64][]byte) (want []int64, ok bool) {
	b := rec.b
	acked := make(map[uint64]bool, rec.n)
	for _, id := range b.ackSeq[:rec.n] {
		acked[id] = true
	}
	want = make([]int64, b.accounts)
	for i := range want {
		want[i] = b.initial
	}
	ok = true
	for id, val := range present {
		x, tried := b.tried[id]
		switch {
		case !tried:
			rep.problemf("transfer %d is present but was never attempted", id)
			ok = false
			continue
		case b.aborted[id]:
			rep.problemf("transfer %d is present but its check aborted it", id)
		case string(val) != b.markerValue(x):
			rep.problemf("transfer %d holds %q, want %q", id, truncate(val), truncate([]byte(b.markerValue(x))))
			if acked[id] {
				rep.Lost = append(rep.Lost, id)
			}
		}
		if !acked[id] {
			rep.InDoubt++
		}
		want[x.From] -= x.Amount
		want[x.To] += x.Amount
	}
	return want, ok
}

// checkBalances compares the balances with those the transfers present
// imply. Without the setup acknowledged and no transfer present, an empty
// bank is fine (the fault came before the accounts were made durable).
func checkBalances(rep *Report, b *Bank, balances map[int]int64, want []int64, needed bool) {
	if len(balances) == 0 && !needed {
		return
	}
	total := int64(0)
	for i := range b.accounts {
		got, ok := balances[i]
		switch {
		case !ok:
			rep.problemf("account %s is missing", AccountKey(i))
			continue
		case got < 0:
			rep.problemf("account %s is negative: %d", AccountKey(i), got)
		}
		if got != want[i] {
			rep.problemf("account %s holds %d, but the transfers present make it %d (a transfer applied in part or twice)", AccountKey(i), got, want[i])
		}
		total += got
	}
	if all := int64(b.accounts) * b.initial; total != all && len(balances) == b.accounts {
		rep.problemf("the accounts hold %d in all, want %d", total, all)
	}
	for i := range balances {
		if i < 0 || i >= b.accounts {
			rep.problemf("account %s exists but the bank has %d accounts", AccountKey(i), b.accounts)
		}
	}
}

func readMarkers(ctx context.Context, st State) (map[uint64][]byte, error) {
	present := map[uint64][]byte{}
	var bad error
	err := st.Scan(ctx, markerPrefix, func(k string, v []byte) bool {
		id, ok := parseMarkerKey(k)
		if !ok {
			bad = fmt.Errorf("unexpected key %q", k)
			return false
		}
		present[id] = append([]byte(nil), v...)
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, fmt.Errorf("read the transfer markers: %w", err)
	}
	return present, nil
}

func readAccounts(ctx context.Context, st State) (map[int]int64, error) {
	balances := map[int]int64{}
	var bad error
	err := st.Scan(ctx, accountPrefix, func(k string, v []byte) bool {
		i, err1 := strconv.Atoi(strings.TrimPrefix(k, accountPrefix))
		n, err2 := strconv.ParseInt(string(v), 10, 64)
		if err1 != nil || err2 != nil {
			bad = fmt.Errorf("account %q holds %q, not a decimal integer", k, truncate(v))
			return false
		}
		balances[i] = n
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, fmt.Errorf("read the accounts: %w", err)
	}
	return balances, nil
}

func truncate(b []byte) []byte {
	if len(b) > 40 {
		return append(b[:40:40], "..."...)
	}
	return b
}

// SameState checks that every copy holds the same state: the same state
// hash at the same applied index. Names label the copies in the error.
func SameState(names []string, indexes, hashes []uint64) error {
	for i := 1; i < len(names); i++ {
		if indexes[i] != indexes[0] || hashes[i] != hashes[0] {
			return fmt.Errorf("%s holds state %s at index %d but %s holds %s at index %d",
				names[0], format.FormatStateHash(hashes[0]), indexes[0], names[i], format.FormatStateHash(hashes[i]), indexes[i])
		}
	}
	return nil
}
