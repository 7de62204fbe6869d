package drill

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

var tornTail = Drill{
	Name: "torn-tail",
	Description: "cut the power in the middle of a WAL write under bank load; `verify` finds the torn tail, " +
		"`wal repair` cuts and quarantines exactly the torn bytes, nothing acknowledged is lost",
	Run: runTornTail,
}

// errPowerCut is what every write returns once the simulated power is off.
var errPowerCut = errors.New("kvtool/drill: simulated power cut")

// tearFS passes everything through to the operating system until it is
// armed; then the next record write to a WAL segment keeps only a prefix of
// its first record, as a power cut in the middle of that write would leave
// it, and that write and every later write or sync of a segment fails.
type tearFS struct {
	vfs.FS
	walDir string
	rng    *rand.Rand // guarded by mu
	armed  atomic.Bool
	cut    atomic.Bool

	mu      sync.Mutex
	renamed map[string]string // old name -> new name, for files renamed after they were opened
	path    string            // the segment torn
	off     int64             // where the torn write started
	kept    []byte            // the bytes of it that reached the disk
}

func (t *tearFS) wrap(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil || filepath.Dir(name) != t.walDir {
		return f, err
	}
	return &tearFile{File: f, fs: t}, nil
}

// Create implements vfs.FS.
func (t *tearFS) Create(name string) (vfs.File, error) {
	f, err := t.FS.Create(name)
	return t.wrap(f, name, err)
}

// Rename implements vfs.FS, remembering the new name of a segment created
// under a temporary one.
func (t *tearFS) Rename(oldname, newname string) error {
	if err := t.FS.Rename(oldname, newname); err != nil {
		return err
	}
	t.mu.Lock()
	if t.renamed == nil {
		t.renamed = map[string]string{}
	}
	t.renamed[oldname] = newname
	t.mu.Unlock()
	return nil
}

// nameOf returns the current name of a file opened as name. The caller
// holds mu.
func (t *tearFS) nameOf(name string) string {
	for i := 0; i < 8; i++ { // a file renamed more than a few times is not a segment
		n, ok := t.renamed[name]
		if !ok {
			break
		}
		name = n
	}
	return name
}

// OpenReadWrite implements vfs.FS.
func (t *tearFS) OpenReadWrite(name string) (vfs.File, error) {
	f, err := t.FS.OpenReadWrite(name)
	return t.wrap(f, name, err)
}

type tearFile struct {
	vfs.File
	fs *tearFS
}

// WriteAt tears the first record write after the FS is armed. Offset 0 is
// a segment's header, never a record.
func (f *tearFile) WriteAt(p []byte, off int64) (int, error) {
	t := f.fs
	if t.cut.Load() {
		return 0, errPowerCut
	}
	if off == 0 || len(p) < format.FrameHeaderSize || !t.armed.CompareAndSwap(true, false) {
		return f.File.WriteAt(p, off)
	}
	frame := format.FrameHeaderSize + int(binary.LittleEndian.Uint32(p[8:12]))
	t.mu.Lock()
	// Strictly inside the first record, and at least its checksum: a tear
	// that leaves only zeros is no different from no write at all.
	keep := 8 + t.rng.IntN(min(frame, len(p))-8)
	t.path, t.off, t.kept = t.nameOf(f.Name()), off, bytes.Clone(p[:keep])
	t.mu.Unlock()
	t.cut.Store(true)
	f.File.WriteAt(p[:keep], off)
	return keep, errPowerCut
}

// Sync fails once the power is off.
func (f *tearFile) Sync() error {
	if f.fs.cut.Load() {
		return errPowerCut
	}
	return f.File.Sync()
}

// Truncate fails once the power is off.
func (f *tearFile) Truncate(size int64) error {
	if f.fs.cut.Load() {
		return errPowerCut
	}
	return f.File.Truncate(size)
}

func runTornTail(ctx context.Context, env *Env) Result {
	r := newRun(env)
	rng := rand.New(rand.NewPCG(env.Seed, 7))
	data := filepath.Join(env.Dir, "data")
	walDir := filepath.Join(data, format.WALDir)
	tfs := &tearFS{FS: vfs.Default, walDir: walDir, rng: rand.New(rand.NewPCG(env.Seed, 8))}
	bank := NewBank(serverAccounts, serverInitial, 0)
	s, err := store.Open(store.Options{FS: tfs, Dir: data, Create: true, SegmentSize: 64 << 10})
	if err != nil {
		return r.abort("create the store: %v", err)
	}
	if err := r.step("setup", func() error { return bank.Setup(ctx, StoreTarget{s}) }); err != nil {
		s.Close()
		return r.abort("%v", err)
	}
	tearAt := env.Duration/4 + time.Duration(rng.Int64N(int64(env.Duration*3/4)+1))
	var cutAt time.Time
	r.step("load and tear a write", func() error {
		cutAt = loadUntilTorn(ctx, s, bank, tfs, tearAt, env.Seed)
		return nil
	})
	s.Close() // fails: the power is off; what is on disk is what the cut left
	st := bank.Stats()
	r.res.Acked = st.Acked
	if !tfs.cut.Load() || st.Acked == 0 {
		return r.abort("no WAL write was torn, or nothing was acknowledged first: the drill tested nothing")
	}
	r.note("tore a write after %v of load: %d of its bytes at offset %d of %s reached the disk; %d transfers acknowledged before",
		tearAt.Round(time.Millisecond), len(tfs.kept), tfs.off, filepath.Base(tfs.path), st.Acked)
	if !checkTornFound(r, data, tfs) {
		return r.result()
	}
	if !repairTorn(r, walDir, tfs) {
		return r.result()
	}
	reopenAndCheck(ctx, r, bank.All(), data, cutAt)
	verifyDir(r, data)
	return r.result()
}

// loadUntilTorn runs the bank load, arms the tear after d and stops the
// load once a write was torn. It returns the moment of the cut.
func loadUntilTorn(ctx context.Context, s *store.Store, bank *Bank, tfs *tearFS, d time.Duration, seed uint64) time.Time {
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		bank.Run(lctx, StoreTarget{s}, serverWorkers, seed)
	}()
	sleep(ctx, d)
	tfs.armed.Store(true)
	waitFor(ctx, time.Minute, tfs.cut.Load)
	cut := time.Now()
	cancel()
	<-done
	return cut
}

// checkTornFound checks that verify reports the torn tail, and only it,
// where the write was torn.
func checkTornFound(r *run, data string, tfs *tearFS) bool {
	var rep *datadir.Report
	err := r.step("verify finds the torn tail", func() error {
		var err error
		rep, err = datadir.Verify(vfs.Default, data, datadir.VerifyOptions{})
		return err
	})
	if !r.check("verify", err) {
		return false
	}
	probs := rep.Problems()
	if len(probs) != 1 || probs[0].Kind != datadir.ProblemKind(segment.TornTail.String()) ||
		probs[0].Path != tfs.path || probs[0].Offset != tfs.off {
		r.fail("verify should report one torn tail in %s at offset %d, and reports: %v", tfs.path, tfs.off, rep.Err())
		return false
	}
	r.logf("verify: %s", probs[0])
	return true
}

// repairTorn runs the repair `kvtool wal repair` runs and checks that it cut
// exactly the torn bytes and kept them in a quarantine file.
func repairTorn(r *run, walDir string, tfs *tearFS) bool {
	var res *segment.RepairResult
	err := r.step("wal repair", func() error {
		var err error
		res, err = segment.Repair(vfs.Default, walDir, segment.RepairOptions{})
		return err
	})
	if !r.check("wal repair", err) {
		return false
	}
	// The torn write may be a rotation's seal record: the new segment was
	// already published (a header, no entry) when the power went, and
	// repair rightly cuts it whole too. Any other cut is a fault.
	var cuts []segment.Cut
	for _, c := range res.Cuts {
		if c.WholeFile && c.Path != tfs.path && c.FirstLostIndex == 0 && c.LastLostIndex == 0 {
			r.note("wal repair also cut %s, a segment a rotation published without an entry before the seal of %s was torn", filepath.Base(c.Path), filepath.Base(tfs.path))
			continue
		}
		cuts = append(cuts, c)
	}
	if len(cuts) != 1 {
		r.fail("wal repair made %d cuts, want 1 (the torn tail): %+v", len(cuts), cuts)
		return false
	}
	c := cuts[0]
	r.logf("wal repair cut %s at offset %d: %d bytes (%s) into %s", c.Path, c.Offset, c.Bytes, c.Kind, c.QuarantinePath)
	switch {
	case c.Path != tfs.path || c.Offset != tfs.off || c.Kind != segment.TornTail:
		r.fail("wal repair cut %s at offset %d (%s), want the torn tail of %s at offset %d", c.Path, c.Offset, c.Kind, tfs.path, tfs.off)
		return false
	case c.FirstLostIndex != 0:
		r.fail("wal repair cut whole records %d to %d with the torn tail", c.FirstLostIndex, c.LastLostIndex)
		return false
	}
	q, err := segment.ReadQuarantine(vfs.Default, c.QuarantinePath)
	if !r.check("read the quarantine file", err) {
		return false
	}
	// The cut ends at the last nonzero byte: zeros after it are the
	// preallocated space, and the torn bytes may end in zeros too.
	torn := bytes.TrimRight(tfs.kept, "\x00")
	if q.Source != filepath.Base(tfs.path) || q.Offset != tfs.off || !bytes.Equal(q.Data, torn) {
		r.fail("the quarantine file %s holds %d bytes of %s at offset %d, want the %d torn bytes of %s at offset %d (%d before trailing zeros)",
			c.QuarantinePath, len(q.Data), q.Source, q.Offset, len(torn), filepath.Base(tfs.path), tfs.off, len(tfs.kept))
		return false
	}
	r.note("wal repair cut %d torn bytes at offset %d and kept them in %s", c.Bytes, c.Offset, filepath.Base(c.QuarantinePath))
	return true
}

// reopenAndCheck opens the repaired directory with the real store, checks
// the bank against rec, and checks that a replay of the directory gives the
// same state. since is the moment of the fault, for the time to recover.
// It returns the checker's report, or nil if the check could not be made.
func reopenAndCheck(ctx context.Context, r *run, rec Record, data string, since time.Time) *Report {
	var s *store.Store
	err := r.step("reopen", func() error {
		var err error
		s, err = store.Open(store.Options{Dir: data})
		return err
	})
	if !r.check("the store does not open after the repair", err) {
		return nil
	}
	r.res.Recovery = time.Since(since)
	snap := s.Snapshot()
	if cut := s.Log().TailCut(); cut != nil {
		r.fail("the store still had to cut a torn tail at open (%s at offset %d): the repair left one", cut.Path, cut.Offset)
	}
	s.Close()
	rep, err := Check(ctx, rec, SnapshotState{snap})
	if !r.check("read the recovered state", err) {
		return nil
	}
	recordReport(r, rep, "after recovery")
	res, err := datadir.Replay(vfs.Default, data, datadir.ReplayOptions{})
	if r.check("replay", err) {
		r.check("replay against the store", SameState([]string{"the store", "a replay of its directory"},
			[]uint64{snap.Index(), res.AppliedIndex}, []uint64{snap.Hash(), res.StateHash}))
	}
	return rep
}
