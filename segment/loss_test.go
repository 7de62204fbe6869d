package segment

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/vfs"
)

// closedLog writes n records (payload(i), entryType(i)) to a log of
// segSize segments and closes it.
func closedLog(t *testing.T, segSize int64, n int) (*vfs.MemFS, []SegmentInfo) {
	t.Helper()
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, segSize))
	appendN(t, l, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return fs, l.Segments()
}

// refused checks that the damaged log in fs is refused everywhere: Verify
// reports a problem of kind in path, Open (even with RepairTail) fails with
// a corruption naming path and pointing at repair, and changes nothing,
// and the Reader fails with corruption that is not a torn tail after
// reading exactly the records before the damage.
func refused(t *testing.T, fs *vfs.MemFS, path string, kind string, intact uint64) {
	t.Helper()
	rep, err := Verify(fs, testDir, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Problems {
		found = found || (p.Path == path && p.Kind.String() == kind)
	}
	if !found {
		t.Fatalf("Verify: want a %s problem in %s, got:\n%s", kind, path, problemsString(rep.Problems))
	}
	before := snapshot(t, fs, testDir)
	opts := memOpts(fs, 1024)
	opts.RepairTail = true
	l, err := Open(opts)
	if err == nil {
		l.Close()
		t.Fatalf("Open accepted the log (last index %d, tail cut %+v)", l.LastIndex(), l.TailCut())
	}
	if !isCorruption(err) || errors.Is(err, ErrTornTail) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "wal repair") {
		t.Fatalf("Open: %v", err)
	}
	if !reflect.DeepEqual(before, snapshot(t, fs, testDir)) {
		t.Fatal("a refused Open changed the directory")
	}
	es, err := readAll(fs, testDir, 0)
	if !isCorruption(err) || errors.Is(err, ErrTornTail) || uint64(len(es)) != intact {
		t.Fatalf("Reader: %d entries, %v; want %d and corruption", len(es), err, intact)
	}
}

// TestMissingNewestSegmentIsReported deletes the newest segment, as the
// review did: the seal record of the one before names it, so the loss is a
// gap, not a log that simply ends earlier.
func TestMissingNewestSegmentIsReported(t *testing.T) {
	fs, segs := closedLog(t, 1024, 60)
	newest, prev := segs[len(segs)-1], segs[len(segs)-2]
	if err := fs.Remove(newest.Path); err != nil {
		t.Fatal(err)
	}
	refused(t, fs, prev.Path, "gap", prev.LastIndex)
}

// TestTruncatedNewestSegmentIsReported truncates the newest segment, as the
// review did: at a record boundary (the last records go, and with them the
// clean-shutdown record), just before the clean-shutdown record (a log
// that was closed cleanly loses its marker only), and inside the
// preallocated zeros (nothing lost, but the file is not what was written).
func TestTruncatedNewestSegmentIsReported(t *testing.T) {
	fs, segs := closedLog(t, 4096, 40)
	newest := segs[len(segs)-1]
	fr, _ := frames(t, fs, newest.Path)
	if len(fr) < 4 {
		t.Fatalf("newest segment holds %d records", len(fr))
	}
	for _, c := range []struct {
		name    string
		size    int64
		intact  uint64
		missing uint64 // what a forced repair says is missing from
	}{
		{"at a record boundary", fr[len(fr)-3].start, newest.LastIndex - 3, newest.LastIndex - 2},
		{"before the clean-shutdown record", fr[len(fr)-1].end, newest.LastIndex, newest.LastIndex + 1},
		{"in the preallocated space", newest.Size + 100, newest.LastIndex, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := copyFS(t, fs, testDir)
			damage(t, img, newest.Path, func(b []byte) []byte { return b[:c.size] })
			refused(t, img, newest.Path, "truncated", c.intact)
			res, err := Repair(img, testDir, RepairOptions{Force: true})
			if err != nil || res.LastIndex != c.intact || len(res.Cuts) != 1 || res.Cuts[0].MissingFrom != c.missing {
				t.Fatalf("forced repair: %+v, %v", res, err)
			}
			l := mustOpen(t, memOpts(img, 4096))
			appendN(t, l, 1)
			l.Close()
			if rep, _ := Verify(img, testDir, VerifyOptions{}); !rep.OK() || rep.LastIndex != c.intact+1 {
				t.Fatalf("after the repair:\n%s", problemsString(rep.Problems))
			}
		})
	}
}

// TestDamagedLastRecordIsRefused flips, one at a time, every byte of the
// last record of the newest segment of a log that stopped without a clean
// shutdown (a kill after the record was acknowledged). Every byte of the
// record is there, so no flip may be taken for a torn write: Open refuses
// (where it used to cut the record with a warning) and the Reader reports
// corruption.
func TestDamagedLastRecordIsRefused(t *testing.T) {
	fs, segs := closedLog(t, 4096, 20)
	newest := segs[len(segs)-1]
	fr, eod := frames(t, fs, newest.Path)
	last := fr[len(fr)-1]
	if b := readFile(t, fs, newest.Path); b[last.end-1] == 0 || b[last.end-1] == 0xff {
		t.Fatalf("the last record ends in %#x: pick a payload a flip cannot zero", b[last.end-1])
	}
	damage(t, fs, newest.Path, func(b []byte) []byte { clear(b[last.end:]); return b }) // no clean shutdown
	if last.end+markerSize != eod {
		t.Fatalf("the clean-shutdown record is not right after the last record (%d, %d)", last.end, eod)
	}
	for off := last.start; off < last.end; off++ {
		for _, flip := range []byte{0xff, 0x01} {
			img := copyFS(t, fs, testDir)
			damage(t, img, newest.Path, func(b []byte) []byte { b[off] ^= flip; return b })
			t.Run(fmt.Sprintf("byte %d ^ %#x", off-last.start, flip), func(t *testing.T) {
				refused(t, img, newest.Path, "corruption", newest.LastIndex-1)
			})
		}
	}
}

// TestTornLastRecordIsCut keeps every prefix of the last record, the rest
// zeros, as a crash during its write leaves it: each is a torn tail that
// Open cuts, keeping every earlier record.
func TestTornLastRecordIsCut(t *testing.T) {
	fs, segs := closedLog(t, 4096, 20)
	newest := segs[len(segs)-1]
	fr, _ := frames(t, fs, newest.Path)
	last := fr[len(fr)-1]
	for keep := int64(1); keep < last.end-last.start; keep++ {
		img := copyFS(t, fs, testDir)
		damage(t, img, newest.Path, func(b []byte) []byte { clear(b[last.start+keep:]); return b })
		opts := memOpts(img, 4096)
		opts.RepairTail = true
		l, err := Open(opts)
		if err != nil {
			t.Fatalf("keep %d bytes: Open: %v", keep, err)
		}
		cut := l.TailCut()
		if cut == nil || cut.Offset != last.start || l.LastIndex() != newest.LastIndex-1 {
			t.Fatalf("keep %d bytes: cut %+v, last index %d", keep, cut, l.LastIndex())
		}
		l.Close()
	}
}

// TestCleanShutdownRecord: Close marks the log closed cleanly; a crash
// (no Close) does not, and appending after a reopen goes on after the
// record.
func TestCleanShutdownRecord(t *testing.T) {
	fs, _ := closedLog(t, 4096, 5)
	if rep, _ := Verify(fs, testDir, VerifyOptions{}); !rep.OK() || !rep.Closed {
		t.Fatalf("after Close: %+v", rep)
	}
	before := snapshot(t, fs, testDir)
	mustOpen(t, memOpts(fs, 4096)).Close()
	if !reflect.DeepEqual(before, snapshot(t, fs, testDir)) {
		t.Fatal("opening and closing a log with nothing written changed its files")
	}
	l := mustOpen(t, memOpts(fs, 4096))
	appendN(t, l, 3)
	img := fs.CrashClone(vfs.CrashOptions{})
	l.Close()
	if rep, _ := Verify(img, testDir, VerifyOptions{}); !rep.OK() || rep.Closed || rep.LastIndex != 8 {
		t.Fatalf("crash image: %+v\n%s", rep, problemsString(rep.Problems))
	}
	es, err := readAll(fs, testDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, es, 1, 8)
}

// TestCrashDuringRotation crashes at every sync of a rotation (and with a
// random part of what was not synced yet, torn): every image opens with
// every acknowledged record, and one of them is the interrupted rotation
// (an empty newest segment after an unsealed one), which Open repairs.
func TestCrashDuringRotation(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var images []*vfs.MemFS
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 4096))
	appendN(t, l, 10)
	waitSpare(t, l)
	fs.SetSyncHook(func(int64) {
		images = append(images, fs.CrashClone(vfs.CrashOptions{}), fs.CrashClone(vfs.CrashOptions{Rand: r, TearLast: true}))
	})
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	fs.SetSyncHook(nil)
	l.Close()
	interrupted := 0
	for k, img := range images {
		names, _ := walNames(img, testDir)
		opts := memOpts(img, 4096)
		opts.RepairTail = true
		l, err := Open(opts)
		if err != nil {
			t.Fatalf("image %d: Open: %v", k, err)
		}
		if after := l.Segments(); len(after) < len(names) {
			interrupted++
		}
		appendN(t, l, 1)
		l.Close()
		es, err := readAll(img, testDir, 0)
		if err != nil {
			t.Fatalf("image %d: %v", k, err)
		}
		checkEntries(t, es, 1, 11)
		if rep, _ := Verify(img, testDir, VerifyOptions{}); !rep.OK() {
			t.Fatalf("image %d:\n%s", k, problemsString(rep.Problems))
		}
	}
	if interrupted == 0 {
		t.Fatalf("none of %d images caught the rotation between publishing the new segment and sealing the old", len(images))
	}
}

// TestRepairMissingNewestSegment: a forced repair of a log whose newest
// segment is missing cuts the seal record of the one before (it names a
// segment that is gone), removes no entry, and says from which index
// entries are missing; the log then goes on.
func TestRepairMissingNewestSegment(t *testing.T) {
	fs, segs := closedLog(t, 1024, 60)
	newest, prev := segs[len(segs)-1], segs[len(segs)-2]
	if err := fs.Remove(newest.Path); err != nil {
		t.Fatal(err)
	}
	if _, err := Repair(fs, testDir, RepairOptions{}); !errors.Is(err, ErrNeedsForce) {
		t.Fatalf("Repair without force: %v", err)
	}
	res, err := Repair(fs, testDir, RepairOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cuts) != 1 || res.LastIndex != prev.LastIndex {
		t.Fatalf("repair: %+v", res)
	}
	c := res.Cuts[0]
	if c.Path != prev.Path || c.FirstLostIndex != 0 || c.MissingFrom != newest.FirstIndex || c.Kind != Gap {
		t.Fatalf("cut %+v", c)
	}
	l := mustOpen(t, memOpts(fs, 1024))
	appendN(t, l, 3)
	l.Close()
	es, err := readAll(fs, testDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, es, 1, prev.LastIndex+3)
}

// waitSpare waits until the background worker has a spare segment ready.
func waitSpare(t testing.TB, l *Log) {
	t.Helper()
	waitFor(t, "a spare segment", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.ready != nil
	})
}

// TestOpenMakesTheDirectoryDurable: creating the WAL directory is followed
// by an fsync of its parent, and publishing the first segment by an fsync
// of the WAL directory, before Open returns.
func TestOpenMakesTheDirectoryDurable(t *testing.T) {
	mem := vfs.NewMem()
	var ops []string
	rec := vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpMkdir || op == vfs.OpSyncDir || op == vfs.OpRename {
			ops = append(ops, op.String()+" "+path)
		}
		return nil
	})
	l := mustOpen(t, memOpts(vfs.NewErrorFS(mem, rec), 4096))
	got := strings.Join(ops, "\n")
	l.Close()
	mkdir := strings.Index(got, "mkdir "+testDir)
	parent := strings.Index(got, "syncdir "+filepath.Dir(testDir))
	rename := strings.Index(got, "rename ")
	wal := strings.LastIndex(got, "syncdir "+testDir)
	if mkdir < 0 || parent < mkdir || rename < parent || wal < rename {
		t.Fatalf("want mkdir %s, syncdir %s, rename, syncdir %s in that order; got:\n%s", testDir, filepath.Dir(testDir), testDir, got)
	}
}
