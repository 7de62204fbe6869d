package drill

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

var midLogCorruption = Drill{
	Name: "mid-log-corruption",
	Description: "flip a byte in a sealed WAL segment; open is refused, `wal repair` refuses without --force, " +
		"and `wal repair --force` reports exactly the indexes that left the log",
	Run: runMidLog,
}

// record is one WAL record found by parsing a segment.
type record struct {
	index    uint64
	off, end int64 // where its frame starts and ends
}

// damage is the byte a drill flipped in a WAL segment.
type damage struct {
	path string
	rec  record // the record it belongs to
	off  int64  // the byte flipped
}

func runMidLog(ctx context.Context, env *Env) Result {
	r := newRun(env)
	rng := rand.New(rand.NewPCG(env.Seed, 5))
	data := filepath.Join(env.Dir, "data")
	walDir := filepath.Join(data, format.WALDir)
	bank := NewBank(serverAccounts, serverInitial, 0)
	if err := r.step("load", func() error { return loadRotating(ctx, data, bank, env) }); err != nil {
		return r.abort("%v", err)
	}
	r.res.Acked = bank.Stats().Acked
	before, err := logIndexes(walDir)
	if err != nil {
		return r.abort("read the WAL before the damage: %v", err)
	}
	var dmg damage
	if err := r.step("damage", func() error { dmg, err = damageSealed(walDir, rng); return err }); err != nil {
		return r.abort("%v", err)
	}
	r.note("flipped the byte at offset %d of %s, in record %d (of %d)", dmg.off, filepath.Base(dmg.path), dmg.rec.index, len(before))
	start := time.Now()
	if !checkRefused(r, data, walDir, dmg) {
		return r.result()
	}
	res, ok := forceRepair(r, walDir, dmg, before)
	if !ok {
		return r.result()
	}
	lost := func(index uint64) bool { return index > res.LastIndex }
	if rep := reopenAndCheck(ctx, r, bank.All().WithReportedLost(lost), data, start); rep != nil {
		r.note("the forced repair removed indexes %d to %d: %d acknowledged transfers left the log, each one reported",
			res.LastIndex+1, before[len(before)-1], rep.Excused)
	}
	verifyDir(r, data)
	return r.result()
}

// loadRotating creates a store in data, runs the bank load for
// env.Duration rotating the WAL a few times, and closes it cleanly.
func loadRotating(ctx context.Context, data string, bank *Bank, env *Env) error {
	s, err := store.Open(store.Options{Dir: data, Create: true, SegmentSize: 64 << 10})
	if err != nil {
		return fmt.Errorf("create the store: %w", err)
	}
	if err := bank.Setup(ctx, StoreTarget{s}); err != nil {
		s.Close()
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, env.Duration)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		bank.Run(lctx, StoreTarget{s}, serverWorkers, env.Seed)
	}()
	for lctx.Err() == nil {
		sleep(lctx, env.Duration/6)
		if err := s.Rotate(); err != nil {
			cancel()
			<-done
			s.Close()
			return fmt.Errorf("rotate: %w", err)
		}
	}
	<-done
	if err := s.Close(); err != nil {
		return fmt.Errorf("close the store: %w", err)
	}
	if bank.Stats().Acked == 0 {
		return errors.New("no transfer was acknowledged: the drill would test nothing")
	}
	return nil
}

// logIndexes reads every index of the log in walDir, in order.
func logIndexes(walDir string) ([]uint64, error) {
	rd, err := segment.NewReader(vfs.Default, walDir, 1)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var idx []uint64
	for {
		e, err := rd.Next()
		if err == io.EOF {
			return idx, nil
		}
		if err != nil {
			return idx, err
		}
		idx = append(idx, e.Index)
	}
}

// damageSealed flips one byte of a random record of a random sealed
// segment (not the newest, which may legitimately end torn).
func damageSealed(walDir string, rng *rand.Rand) (damage, error) {
	sealed, err := sealedSegments(walDir)
	if err != nil {
		return damage{}, err
	}
	seg := sealed[rng.IntN(len(sealed))]
	recs, err := segmentRecords(seg.Path)
	if err != nil {
		return damage{}, err
	}
	return damageRecord(seg.Path, recs[rng.IntN(len(recs))], rng)
}

// sealedSegments lists the segments of walDir, but the newest, that hold
// records.
func sealedSegments(walDir string) ([]segment.SegmentInfo, error) {
	infos, err := segment.List(vfs.Default, walDir)
	if err != nil {
		return nil, err
	}
	var sealed []segment.SegmentInfo
	for _, in := range infos[:max(len(infos)-1, 0)] {
		if in.Records > 0 {
			sealed = append(sealed, in)
		}
	}
	if len(sealed) == 0 {
		return nil, fmt.Errorf("the WAL has no sealed segment with records (%d segments)", len(infos))
	}
	return sealed, nil
}

// damageRecord flips a random byte of record rec of the segment at path.
func damageRecord(path string, rec record, rng *rand.Rand) (damage, error) {
	d := damage{path: path, rec: rec, off: rec.off + rng.Int64N(rec.end-rec.off)}
	return d, flipByte(d.path, d.off, byte(1+rng.IntN(255)))
}

// segmentRecords parses the records of the segment at path.
func segmentRecords(path string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := format.ReadHeader(f, path, format.MagicSegment); err != nil {
		return nil, err
	}
	start, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	fr := format.NewFrameReader(f, path, start, -1, true)
	var recs []record
	for {
		f, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case format.FrameWALTxn, format.FrameWALNoop, format.FrameWALConf: // a record, not a marker
			recs = append(recs, record{index: binary.LittleEndian.Uint64(f.Payload), off: f.Offset, end: fr.Offset()})
		}
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s holds no record", path)
	}
	return recs, nil
}

// flipByte XORs the byte at off of the file at path with x.
func flipByte(path string, off int64, x byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		f.Close()
		return err
	}
	b[0] ^= x
	if _, err := f.WriteAt(b[:], off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkRefused checks that the damage is found and nothing is changed
// without the operator's say: the store refuses to open, verify names the
// segment and the damaged record's offset, and repair without --force
// refuses and leaves every byte as it was.
func checkRefused(r *run, data, walDir string, dmg damage) bool {
	r.step("open is refused", func() error {
		s, err := store.Open(store.Options{Dir: data})
		if err == nil {
			s.Close()
			r.fail("the store opened with record %d of %s damaged", dmg.rec.index, dmg.path)
			return nil
		}
		r.logf("open refused: %v", err)
		return nil
	})
	r.step("verify names the damage", func() error {
		rep, err := datadir.Verify(vfs.Default, data, datadir.VerifyOptions{})
		if !r.check("verify", err) {
			return err
		}
		for _, p := range rep.Problems() {
			if p.Path == dmg.path && p.Offset == dmg.rec.off {
				r.logf("verify: %s", p)
				return nil
			}
		}
		r.fail("verify does not name %s at offset %d (the damaged record); it reports: %v", dmg.path, dmg.rec.off, rep.Err())
		return nil
	})
	before, err := dirDigest(data)
	if !r.check("read the directory", err) {
		return false
	}
	r.step("wal repair without --force is refused", func() error {
		_, err := segment.Repair(vfs.Default, walDir, segment.RepairOptions{})
		if !errors.Is(err, segment.ErrNeedsForce) {
			r.fail("wal repair without --force: got %v, want a refusal (%v)", err, segment.ErrNeedsForce)
		}
		return nil
	})
	after, err := dirDigest(data)
	if r.check("read the directory", err) && after != before {
		r.fail("wal repair without --force changed the data directory")
	}
	return r.failed == 0
}

// forceRepair runs `wal repair --force` and checks that what it reports
// removed is exactly what is now missing from the log: the damaged record
// (which no report can decode) and every index after it, listed in cuts.
func forceRepair(r *run, walDir string, dmg damage, before []uint64) (*segment.RepairResult, bool) {
	var res *segment.RepairResult
	err := r.step("wal repair --force", func() error {
		var err error
		res, err = segment.Repair(vfs.Default, walDir, segment.RepairOptions{Force: true})
		return err
	})
	if !r.check("wal repair --force", err) {
		return nil, false
	}
	for _, c := range res.Cuts {
		r.logf("cut %s at offset %d (whole file %v): %d bytes, indexes %d to %d, into %s",
			c.Path, c.Offset, c.WholeFile, c.Bytes, c.FirstLostIndex, c.LastLostIndex, c.QuarantinePath)
	}
	after, err := logIndexes(walDir)
	if !r.check("read the WAL after the repair", err) {
		return res, false
	}
	if err := checkRepairReport(res, dmg, before, after); err != nil {
		r.fail("the forced repair's report does not match what left the log: %v", err)
		return res, false
	}
	return res, true
}

// checkRepairReport compares a forced repair's report with the log before
// and after it.
func checkRepairReport(res *segment.RepairResult, dmg damage, before, after []uint64) error {
	if len(res.Cuts) == 0 || res.Cuts[0].Path != dmg.path || res.Cuts[0].Offset != dmg.rec.off {
		return fmt.Errorf("the first cut should be %s at offset %d (the damaged record %d)", dmg.path, dmg.rec.off, dmg.rec.index)
	}
	if res.LastIndex != dmg.rec.index-1 {
		return fmt.Errorf("it says the log now ends at %d, but the damaged record is %d", res.LastIndex, dmg.rec.index)
	}
	reported := map[uint64]bool{}
	for _, c := range res.Cuts {
		for i := c.FirstLostIndex; c.FirstLostIndex != 0 && i <= c.LastLostIndex; i++ {
			if reported[i] {
				return fmt.Errorf("index %d is reported by two cuts", i)
			}
			reported[i] = true
		}
	}
	// The damaged record itself: a cut lists it when the repair knows its
	// index, and otherwise the report implies it (the log ends just
	// before it).
	reported[dmg.rec.index] = true
	kept := map[uint64]bool{}
	for _, i := range after {
		kept[i] = true
	}
	missing := 0
	for _, i := range before {
		switch {
		case kept[i] && reported[i]:
			return fmt.Errorf("index %d is reported removed but is still in the log", i)
		case !kept[i] && !reported[i]:
			return fmt.Errorf("index %d left the log without being reported", i)
		case !kept[i]:
			missing++
		}
	}
	if missing != len(reported) {
		return fmt.Errorf("%d indexes are reported removed but %d left the log", len(reported), missing)
	}
	if n := len(after); n > 0 && after[n-1] != res.LastIndex {
		return fmt.Errorf("it says the log now ends at %d but it ends at %d", res.LastIndex, after[n-1])
	}
	return nil
}
