package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/replay"
	"github.com/kvtool/kvtool/vfs"
)

// stage is a frozen copy of the data directory right after a maintenance
// step, with the manifest it published.
type stage struct {
	what string
	upTo uint64 // applied index when the copy was taken
	fs   *vfs.MemFS
	man  *manifest.Manifest
}

// TestEquivalence runs a random workload with checkpoints, deltas and merges
// in between, recording the state hash the live store published at every
// index. Then, at every recorded index, the state rebuilt by (a) pure WAL
// replay, and by every retained combination the directory went through —
// (b) checkpoint + WAL tail, (c) base + deltas + tail, (d) merged base +
// tail — must have exactly that hash. Finally compaction drops history and
// the reopened store still has the final state.
func TestEquivalence(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { testEquivalence(t, seed) })
	}
}

func testEquivalence(t *testing.T, seed uint64) {
	ctx := context.Background()
	m := vfs.NewMem()
	s, err := Open(Options{FS: m, Dir: "/data", Create: true, Shards: 4, SegmentSize: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 5))
	hashes := map[uint64]uint64{} // index (>= 1) -> state hash published at it
	// A stage's copy is taken just before the next maintenance step (or at
	// the end), so each one holds its snapshot files and a WAL tail after
	// them.
	var stages []stage
	pending := ""
	snapshotStage := func(next string) {
		if pending != "" {
			man := s.CurrentManifest()
			stages = append(stages, stage{what: pending, upTo: s.Snapshot().Index(), fs: m.CrashClone(vfs.CrashOptions{}), man: &man})
		}
		pending = next
	}
	for step := 0; step < 600; step++ {
		_, err := s.Commit(ctx, randomTxn(rng))
		if errors.Is(err, ErrCheckFailed) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		// One writer, so the published snapshot is the state at its index.
		// (A transaction that changed nothing returns the index of the state
		// its shards showed, which may be older.)
		if snap := s.Snapshot(); snap.Index() > 0 {
			hashes[snap.Index()] = snap.Hash()
		}
		switch r := rng.IntN(100); {
		case r < 3:
			snapshotStage("checkpoint")
			mustMaint(t, "checkpoint", func() error { _, err := s.Checkpoint(ctx); return err })
		case r < 10:
			snapshotStage("delta")
			mustMaint(t, "delta", func() error { _, err := s.Delta(ctx); return err })
		case r < 12:
			snapshotStage("merge")
			mustMaint(t, "merge", func() error { _, err := s.Merge(ctx); return err })
		}
	}
	snapshotStage("")
	last := s.Snapshot().Index()
	finalHash := hashes[last]

	// (a) pure WAL replay from index 1: nothing was compacted yet.
	walDir := filepath.Join("/data", format.WALDir)
	for idx, want := range sample(hashes, rng, 40) {
		mem := replay.NewMemory()
		if _, err := replay.WAL(m, walDir, 1, idx, mem); err != nil {
			t.Fatalf("WAL replay to %d: %v", idx, err)
		}
		if mem.Hash() != want {
			t.Fatalf("WAL replay to %d: hash %016x, live store had %016x", idx, mem.Hash(), want)
		}
	}
	// (b), (c), (d): every stage's files plus the WAL tail.
	checked := map[string]int{}
	for _, st := range stages {
		from := st.man.SnapshotIndex()
		if st.man.Base != nil {
			from = st.man.Base.Index
		}
		for idx, want := range sampleRange(hashes, rng, from, st.upTo, 10) {
			mem := replay.NewMemory()
			res, err := replay.Dir(st.fs, "/data", replay.Options{ToIndex: idx}, mem)
			if err != nil {
				t.Fatalf("after %s (base %v, %d deltas): replay to %d: %v", st.what, st.man.Base != nil, len(st.man.Deltas), idx, err)
			}
			if mem.Hash() != want || res.AppliedIndex != idx {
				t.Fatalf("after %s: replay to %d (chain %+v): index %d hash %016x, live store had %016x",
					st.what, idx, res.Chain, res.AppliedIndex, mem.Hash(), want)
			}
			checked[st.what+kindOfChain(res.Chain)]++
		}
	}
	// The store's own recovery (its loader: the base decoded in parallel and
	// merged with the deltas and the WAL tail) opens every stage at the
	// state the live store had.
	for _, st := range stages {
		want, ok := hashes[st.upTo]
		if !ok {
			continue
		}
		ro, err := Open(Options{FS: st.fs, Dir: "/data", ReadOnly: true})
		if err != nil {
			t.Fatalf("after %s: open: %v", st.what, err)
		}
		if got := ro.Snapshot(); got.Index() != st.upTo || got.Hash() != want {
			t.Fatalf("after %s (base %v, %d deltas): opened at %d hash %016x, live store had %d %016x",
				st.what, st.man.Base != nil, len(st.man.Deltas), got.Index(), got.Hash(), st.upTo, want)
		}
		ro.Close()
		checked["open/"+st.what]++
	}
	t.Logf("rebuilt states compared: %v", checked)
	for _, k := range []string{"checkpoint/base+tail", "delta/base+deltas+tail", "merge/base+tail"} {
		if checked[k] == 0 {
			t.Errorf("no state rebuilt as %s", k)
		}
	}
	if len(stages) == 0 {
		t.Fatal("the workload ran no maintenance")
	}

	// Compaction drops history; the state survives a reopen.
	res, err := s.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.WALFirstIndex != last+1 {
		t.Errorf("compact: WAL first index %d, want %d", res.WALFirstIndex, last+1)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(Options{FS: m, Dir: "/data"})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := s2.Snapshot(); got.Index() != last || got.Hash() != finalHash {
		t.Fatalf("after compaction and reopen: index %d hash %016x, want %d %016x", got.Index(), got.Hash(), last, finalHash)
	}
	if _, err := replay.Dir(m, "/data", replay.Options{ToIndex: 1}, replay.NewMemory()); last > 1 && !errors.Is(err, replay.ErrNotCovered) {
		t.Errorf("replay before the compacted base: %v, want ErrNotCovered", err)
	}
}

func kindOfChain(c replay.Chain) string {
	switch {
	case c.Base != "" && len(c.Deltas) > 0:
		return "/base+deltas+tail"
	case c.Base != "":
		return "/base+tail"
	case len(c.Deltas) > 0:
		return "/deltas+tail"
	}
	return "/tail"
}

func mustMaint(t *testing.T, what string, f func() error) {
	t.Helper()
	if err := f(); err != nil && !errors.Is(err, ErrNothingToDo) {
		t.Fatalf("%s: %v", what, err)
	}
}

// randomTxn mixes puts, deletes, adds and checks over a small key space so
// keys are overwritten and deleted often.
func randomTxn(rng *rand.Rand) *Txn {
	txn := &Txn{}
	for n := 1 + rng.IntN(4); n > 0; n-- {
		key := fmt.Sprintf("k%03d", rng.IntN(200))
		switch rng.IntN(10) {
		case 0, 1:
			txn.Ops = append(txn.Ops, Op{Kind: OpDelete, Key: key})
		case 2, 3:
			txn.Ops = append(txn.Ops, Op{Kind: OpAdd, Key: "n" + key, Delta: int64(rng.IntN(100) - 50)})
		case 4:
			txn.Ops = append(txn.Ops, Op{Kind: OpCheck, Key: "n" + key, Check: CheckMin, Min: -200})
		default:
			txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: key, Value: []byte(fmt.Sprintf("v%d", rng.IntN(1000)))})
		}
	}
	return txn
}

// sampleRange picks up to n recorded indexes in [lo, hi], always including
// both ends when they were recorded.
func sampleRange(hashes map[uint64]uint64, rng *rand.Rand, lo, hi uint64, n int) map[uint64]uint64 {
	in := map[uint64]uint64{}
	for idx, h := range hashes {
		if idx >= lo && idx <= hi {
			in[idx] = h
		}
	}
	out := map[uint64]uint64{}
	for _, idx := range []uint64{lo, hi} {
		if h, ok := in[idx]; ok {
			out[idx] = h
		}
	}
	for idx, h := range in {
		if len(out) >= n {
			break
		}
		if rng.IntN(2) == 0 {
			out[idx] = h
		}
	}
	return out
}

// sample picks up to n recorded indexes (always including the largest).
func sample(hashes map[uint64]uint64, rng *rand.Rand, n int) map[uint64]uint64 {
	out := map[uint64]uint64{}
	maxIdx := uint64(0)
	for idx := range hashes {
		maxIdx = max(maxIdx, idx)
	}
	out[maxIdx] = hashes[maxIdx]
	for idx, h := range hashes {
		if len(out) >= n {
			break
		}
		if rng.IntN(3) == 0 {
			out[idx] = h
		}
	}
	return out
}
