package drill

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

var corruptSnapshot = Drill{
	Name: "corrupt-snapshot",
	Description: "flip bytes in the base checkpoint and in a delta; `verify` names the file and offset, " +
		"and recovery refuses rather than yield a wrong state",
	Run: runCorruptSnapshot,
}

// maxFlips bounds the bytes flipped in one file.
const maxFlips = 200

func runCorruptSnapshot(ctx context.Context, env *Env) Result {
	r := newRun(env)
	rng := rand.New(rand.NewPCG(env.Seed, 6))
	data := filepath.Join(env.Dir, "data")
	bank := NewBank(serverAccounts, serverInitial, 0)
	var good *store.Snapshot
	if err := r.step("load with a checkpoint and a delta", func() error {
		var err error
		good, err = loadWithSnapshots(ctx, data, bank, env)
		return err
	}); err != nil {
		return r.abort("%v", err)
	}
	r.res.Acked = bank.Stats().Acked
	man, err := manifest.Load(vfs.Default, data)
	if err != nil || man.Base == nil || len(man.Deltas) == 0 {
		return r.abort("the directory should have a base checkpoint and a delta (manifest: %+v, %v)", man, err)
	}
	files := []string{
		filepath.Join(data, format.SnapDir, man.Base.Name),
		filepath.Join(data, format.SnapDir, man.Deltas[len(man.Deltas)-1].Name),
	}
	budget := env.Duration / time.Duration(len(files))
	for _, path := range files {
		if err := r.step("flip bytes in "+filepath.Base(path), func() error {
			return flipAll(r, rng, data, path, good, budget)
		}); err != nil {
			return r.abort("%v", err)
		}
	}
	r.note("flipped %d bytes, one at a time, in %s and %s: each one found by verify and refused by recovery",
		r.res.Points, filepath.Base(files[0]), filepath.Base(files[1]))
	// Every byte is back: the directory must recover to the good state.
	reopenAndCheck(ctx, r, bank.All(), data, time.Now())
	r.res.Recovery = 0 // a single node has no copy to recover the file from
	verifyDir(r, data)
	return r.result()
}

// loadWithSnapshots makes a directory whose state needs its base
// checkpoint and a delta: load, checkpoint and compact (the WAL before the
// checkpoint is dropped), load, delta, load. It returns the state.
func loadWithSnapshots(ctx context.Context, data string, bank *Bank, env *Env) (*store.Snapshot, error) {
	s, err := store.Open(store.Options{Dir: data, Create: true, SegmentSize: 64 << 10})
	if err != nil {
		return nil, fmt.Errorf("create the store: %w", err)
	}
	defer s.Close()
	if err := bank.Setup(ctx, StoreTarget{s}); err != nil {
		return nil, err
	}
	load := func(d time.Duration) {
		lctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		bank.Run(lctx, StoreTarget{s}, serverWorkers, env.Seed)
	}
	load(env.Duration / 3)
	if _, err := s.Compact(ctx); err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	load(env.Duration / 3)
	if _, err := s.Delta(ctx); err != nil {
		return nil, fmt.Errorf("delta: %w", err)
	}
	load(env.Duration / 6)
	snap := s.Snapshot()
	return snap, s.Close()
}

// flipAll flips one byte of path at a time, at random offsets, for about
// budget (at least once), checking each damage and putting the byte back.
func flipAll(r *run, rng *rand.Rand, data, path string, good *store.Snapshot, budget time.Duration) error {
	orig, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(budget)
	for n := 0; n < maxFlips && (n == 0 || time.Now().Before(deadline)); n++ {
		off := rng.Int64N(int64(len(orig)))
		if err := flipByte(path, off, byte(1+rng.IntN(255))); err != nil {
			return err
		}
		r.res.Points++
		ok := checkFlip(r, data, path, off, good)
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			return fmt.Errorf("put %s back: %w", path, err)
		}
		if !ok {
			break // one failure says it; the log has the details
		}
	}
	return nil
}

// checkFlip checks one damaged byte: verify names the file and an offset at
// or before the byte, and neither the store nor an offline replay recovers
// a state from the directory.
func checkFlip(r *run, data, path string, off int64, good *store.Snapshot) bool {
	ok := true
	where := fmt.Sprintf("byte %d of %s flipped", off, filepath.Base(path))
	rep, err := datadir.Verify(vfs.Default, data, datadir.VerifyOptions{})
	if err != nil {
		r.logf("%s: verify stopped: %v", where, err)
	}
	if !namesDamage(rep, path, off) {
		r.fail("%s: verify does not name the file and an offset at or before the byte (it reports: %v, %v)", where, reportErr(rep), err)
		ok = false
	}
	if s, err := store.Open(store.Options{Dir: data}); err == nil {
		snap := s.Snapshot()
		s.Close()
		r.fail("%s: the store opened anyway, at index %d with state %s (the good state: %s at %d)", where,
			snap.Index(), format.FormatStateHash(snap.Hash()), format.FormatStateHash(good.Hash()), good.Index())
		ok = false
	}
	if res, err := datadir.Replay(vfs.Default, data, datadir.ReplayOptions{}); err == nil {
		r.fail("%s: replay rebuilt a state anyway, at index %d with state %s (the good state: %s at %d)", where,
			res.AppliedIndex, format.FormatStateHash(res.StateHash), format.FormatStateHash(good.Hash()), good.Index())
		ok = false
	}
	return ok
}

func namesDamage(rep *datadir.Report, path string, off int64) bool {
	if rep == nil {
		return false
	}
	for _, p := range rep.Problems() {
		if p.Path == path && p.Offset != datadir.NoOffset && p.Offset <= off {
			return true
		}
	}
	return false
}

func reportErr(rep *datadir.Report) error {
	if rep == nil {
		return nil
	}
	return rep.Err()
}
