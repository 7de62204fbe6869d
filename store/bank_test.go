package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvtool/kvtool/vfs"
)

const (
	bankAccounts = 100
	bankInitial  = 1000
)

func acct(i int) string { return fmt.Sprintf("acct:%03d", i) }

// initBank creates the accounts in one transaction.
func initBank(t testing.TB, s *Store) {
	t.Helper()
	txn := &Txn{}
	for i := 0; i < bankAccounts; i++ {
		txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: acct(i), Value: []byte(strconv.Itoa(bankInitial))})
	}
	if _, err := s.Commit(context.Background(), txn); err != nil {
		t.Fatal(err)
	}
}

// transfer moves amt from a to b and records the transfer under its id, all
// in one transaction.
func transfer(id string, a, b int, amt int64) *Txn {
	return &Txn{Ops: []Op{
		{Kind: OpAdd, Key: acct(a), Delta: -amt},
		{Kind: OpAdd, Key: acct(b), Delta: amt},
		{Kind: OpCheck, Key: acct(a), Check: CheckMin, Min: 0},
		{Kind: OpPut, Key: "xfer:" + id, Value: []byte(fmt.Sprintf("%d,%d,%d", a, b, amt))},
	}}
}

// checkBank checks that a snapshot holds the bank invariant: the total is
// unchanged and no balance is negative.
func checkBank(snap *Snapshot) error {
	total := int64(0)
	for i := 0; i < bankAccounts; i++ {
		v, ok := snap.Get(acct(i))
		if !ok {
			return fmt.Errorf("index %d: %s missing", snap.Index(), acct(i))
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("index %d: %s = %q", snap.Index(), acct(i), v)
		}
		total += n
	}
	if total != bankAccounts*bankInitial {
		return fmt.Errorf("index %d: total %d, want %d", snap.Index(), total, bankAccounts*bankInitial)
	}
	return nil
}

// runBank runs writers doing random transfers until each did n, while
// readers check every snapshot they see. It returns the ids of the
// acknowledged transfers.
func runBank(t *testing.T, s *Store, writers, n int, onAck func(id string)) {
	t.Helper()
	var stop atomic.Bool
	var wg, rg sync.WaitGroup
	errc := make(chan error, writers+4)
	for r := 0; r < 3; r++ {
		rg.Add(1)
		go func() {
			defer rg.Done()
			last := uint64(0)
			for !stop.Load() {
				snap := s.Snapshot()
				if snap.Index() < last {
					errc <- fmt.Errorf("snapshot index went back from %d to %d", last, snap.Index())
					return
				}
				last = snap.Index()
				if err := checkBank(snap); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; i < n; i++ {
				a, b := rng.IntN(bankAccounts), rng.IntN(bankAccounts-1)
				if b >= a {
					b++
				}
				id := fmt.Sprintf("%d-%d", w, i)
				_, err := s.Commit(context.Background(), transfer(id, a, b, int64(1+rng.IntN(400))))
				switch {
				case err == nil:
					if onAck != nil {
						onAck(id)
					}
				case errors.Is(err, ErrCheckFailed):
				default:
					errc <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	stop.Store(true)
	rg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func TestBank(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   func(t *testing.T) (vfs.FS, string)
	}{
		{"mem", func(t *testing.T) (vfs.FS, string) { return vfs.NewMem(), "/data" }},
		{"os", func(t *testing.T) (vfs.FS, string) { return vfs.Default, t.TempDir() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys, dir := tc.fs(t)
			s, err := Open(Options{FS: fsys, Dir: dir, Create: true, SegmentSize: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			initBank(t, s)
			runBank(t, s, 16, 150, nil)
			hash, idx := s.Snapshot().Hash(), s.Snapshot().Index()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Reopening replays to the same state.
			s2, err := Open(Options{FS: fsys, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			if got := s2.Snapshot(); got.Hash() != hash || got.Index() != idx {
				t.Fatalf("reopened at %d hash %x, want %d %x", got.Index(), got.Hash(), idx, hash)
			}
			if err := checkBank(s2.Snapshot()); err != nil {
				t.Fatal(err)
			}
		})
	}
}
