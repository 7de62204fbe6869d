package segment

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// tornLog is a one-segment log of 10 records followed by the first 20 bytes
// of an 11th, as a torn write leaves it. It returns the end of good data.
func tornLog(t testing.TB) (*vfs.MemFS, int64, []byte) {
	t.Helper()
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 4096))
	appendN(t, l, 10)
	eod := l.Segments()[0].Size
	l.Close()
	torn := appendRecord(nil, format.FrameWALTxn, 11, 1, payload(11))[:20]
	damage(t, fs, segPath(1), func(b []byte) []byte { copy(b[eod:], torn); return b })
	return fs, eod, torn
}

func TestRepairTornTail(t *testing.T) {
	fs, eod, torn := tornLog(t)
	onlyProblem(t, fs, TornTail, eod)
	before := snapshot(t, fs, testDir)
	dry, err := Repair(fs, testDir, RepairOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, snapshot(t, fs, testDir)) {
		t.Fatal("a dry run changed the directory")
	}
	res, err := Repair(fs, testDir, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	qpath := filepath.Join(testDir, format.QuarantineName(format.SegmentName(1), eod))
	torn = bytes.TrimRight(torn, "\x00") // trailing zeros are not kept
	want := Cut{Path: segPath(1), Offset: eod, Bytes: int64(len(torn)), Kind: TornTail, Reason: res.Cuts[0].Reason, QuarantinePath: qpath}
	if len(res.Cuts) != 1 || res.Cuts[0] != want || res.LastIndex != 10 {
		t.Fatalf("cuts %+v, last %d; want %+v", res.Cuts, res.LastIndex, want)
	}
	dry.DryRun = false
	if !reflect.DeepEqual(dry, res) {
		t.Fatalf("dry run said %+v, repair did %+v", dry, res)
	}
	q, err := ReadQuarantine(fs, qpath)
	if err != nil || q.Source != format.SegmentName(1) || q.Offset != eod || !bytes.Equal(q.Data, torn) {
		t.Fatalf("quarantine: %+v, %v", q, err)
	}
	if rep, _ := Verify(fs, testDir, VerifyOptions{}); !rep.OK() || rep.LastIndex != 10 {
		t.Fatalf("after repair:\n%s", problemsString(rep.Problems))
	}
	if n := len(readFile(t, fs, segPath(1))); n != 4096 {
		t.Fatalf("segment is %d bytes after the cut, want its preallocated 4096", n)
	}
	again, err := Repair(fs, testDir, RepairOptions{})
	if err != nil || len(again.Cuts) != 0 {
		t.Fatalf("second repair: %+v, %v", again, err)
	}
	l := mustOpen(t, memOpts(fs, 4096))
	appendN(t, l, 5)
	l.Close()
	es, _ := readAll(fs, testDir, 0)
	checkEntries(t, es, 1, 15)
}

func TestOpenRepairTail(t *testing.T) {
	fs, eod, torn := tornLog(t)
	dry, err := Repair(fs, testDir, RepairOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(memOpts(fs, 4096)); !errors.Is(err, ErrTornTail) {
		t.Fatalf("Open without RepairTail: %v", err)
	}
	opts := memOpts(fs, 4096)
	opts.RepairTail = true
	l := mustOpen(t, opts)
	if c := l.TailCut(); c == nil || *c != dry.Cuts[0] || c.Offset != eod {
		t.Fatalf("TailCut %+v, want %+v", c, dry.Cuts[0])
	}
	if l.LastIndex() != 10 {
		t.Fatalf("last %d", l.LastIndex())
	}
	appendN(t, l, 1)
	l.Close()
	q, err := ReadQuarantine(fs, dry.Cuts[0].QuarantinePath)
	if err != nil || !bytes.Equal(q.Data, bytes.TrimRight(torn, "\x00")) {
		t.Fatalf("quarantine %v", err)
	}
	l = mustOpen(t, opts)
	if l.TailCut() != nil {
		t.Fatalf("second open cut again: %+v", l.TailCut())
	}
	l.Close()
}

// TestRepairSameOffsetTwice: a second tear at the same offset does not
// overwrite the first quarantine file.
func TestRepairSameOffsetTwice(t *testing.T) {
	fs, eod, torn := tornLog(t)
	first, err := Repair(fs, testDir, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	damage(t, fs, segPath(1), func(b []byte) []byte { copy(b[eod:], torn[:7]); return b })
	second, err := Repair(fs, testDir, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := first.Cuts[0].QuarantinePath, second.Cuts[0].QuarantinePath
	if p1 == p2 || !format.IsQuarantineName(filepath.Base(p2)) {
		t.Fatalf("quarantine paths %s and %s", p1, p2)
	}
	for _, c := range []struct {
		path string
		want []byte
	}{{p1, bytes.TrimRight(torn, "\x00")}, {p2, torn[:7]}} {
		if q, err := ReadQuarantine(fs, c.path); err != nil || !bytes.Equal(q.Data, c.want) {
			t.Fatalf("%s: %v", c.path, err)
		}
	}
}

// forceLog is a log of many segments with the middle one's second frame
// damaged.
func forceLog(t testing.TB) (*vfs.MemFS, []SegmentInfo, int, frameSpan) {
	t.Helper()
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 1024))
	appendN(t, l, 60)
	segs := l.Segments()
	l.Close()
	m := len(segs) / 2
	fr, _ := frames(t, fs, segs[m].Path)
	if len(fr) < 3 {
		t.Fatalf("segment %s has only %d records", segs[m].Name, len(fr))
	}
	damage(t, fs, segs[m].Path, func(b []byte) []byte { b[fr[1].start+18]++; return b })
	return fs, segs, m, fr[1]
}

func TestRepairRefusesCorruption(t *testing.T) {
	fs, segs, m, bad := forceLog(t)
	before := snapshot(t, fs, testDir)
	res, err := Repair(fs, testDir, RepairOptions{})
	if !errors.Is(err, ErrNeedsForce) || len(res.Problems) != 1 || res.Problems[0].Offset != bad.start || res.Problems[0].Path != segs[m].Path {
		t.Fatalf("Repair: %+v, %v", res, err)
	}
	if !reflect.DeepEqual(before, snapshot(t, fs, testDir)) {
		t.Fatal("a refused repair changed the directory")
	}
}

func TestRepairForce(t *testing.T) {
	fs, segs, m, bad := forceLog(t)
	before := snapshot(t, fs, testDir)
	dry, err := Repair(fs, testDir, RepairOptions{Force: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, snapshot(t, fs, testDir)) {
		t.Fatal("a dry run changed the directory")
	}
	res, err := Repair(fs, testDir, RepairOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	dry.DryRun = false
	if !reflect.DeepEqual(dry, res) {
		t.Fatalf("dry run %+v\nrepair %+v", dry, res)
	}
	if len(res.Cuts) != len(segs)-m {
		t.Fatalf("%d cuts, want %d", len(res.Cuts), len(segs)-m)
	}
	badIndex := segs[m].FirstIndex + 1
	c := res.Cuts[0]
	if c.Path != segs[m].Path || c.Offset != bad.start || c.WholeFile || c.Kind != Corruption ||
		c.FirstLostIndex != badIndex || c.LastLostIndex != segs[m].LastIndex { // the damaged record left the log too
		t.Fatalf("first cut %+v", c)
	}
	q, err := ReadQuarantine(fs, c.QuarantinePath)
	if err != nil || !bytes.Equal(q.Data, bytes.TrimRight(before[segs[m].Name][bad.start:], "\x00")) {
		t.Fatalf("quarantine of the cut: %v", err)
	}
	for k, c := range res.Cuts[1:] {
		s := segs[m+1+k]
		if c.Path != s.Path || !c.WholeFile || c.FirstLostIndex != s.FirstIndex || c.LastLostIndex != s.LastIndex {
			t.Fatalf("cut %d: %+v, want all of %+v", k+1, c, s)
		}
		q, err := ReadQuarantine(fs, c.QuarantinePath)
		if err != nil || !bytes.Equal(q.Data, bytes.TrimRight(before[s.Name], "\x00")) || q.Offset != 0 {
			t.Fatalf("quarantine of %s: %v", s.Name, err)
		}
		if _, err := fs.Stat(s.Path); !vfs.IsNotExist(err) {
			t.Fatalf("%s was not removed", s.Path)
		}
	}
	if res.LastIndex != badIndex-1 {
		t.Fatalf("last index %d, want %d", res.LastIndex, badIndex-1)
	}
	rep, _ := Verify(fs, testDir, VerifyOptions{})
	if !rep.OK() || rep.LastIndex != badIndex-1 {
		t.Fatalf("after forced repair:\n%s", problemsString(rep.Problems))
	}
	l := mustOpen(t, memOpts(fs, 1024))
	appendN(t, l, 3)
	l.Close()
	es, err := readAll(fs, testDir, 0)
	if err != nil || es[len(es)-1].Index != badIndex+2 {
		t.Fatalf("after reopen: %v", err)
	}
}

func TestRepairForceDamagedHeader(t *testing.T) {
	fs, segs, m, _ := forceLog(t)
	damage(t, fs, segs[m-1].Path, func(b []byte) []byte { b[20] ^= 1; return b })
	res, err := Repair(fs, testDir, RepairOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	// The segment before the damaged one is the newest again: its seal
	// record, which names the removed segment, is cut first.
	if len(res.Cuts) != len(segs)-m+2 || res.Cuts[0].Path != segs[m-2].Path || res.Cuts[0].WholeFile ||
		res.Cuts[0].FirstLostIndex != 0 || !res.Cuts[1].WholeFile || res.Cuts[1].Path != segs[m-1].Path ||
		res.Cuts[1].FirstLostIndex != segs[m-1].FirstIndex {
		t.Fatalf("cuts %+v", res.Cuts)
	}
	if rep, _ := Verify(fs, testDir, VerifyOptions{}); !rep.OK() || rep.LastIndex != segs[m-2].LastIndex {
		t.Fatalf("after:\n%s", problemsString(rep.Problems))
	}
}

// TestRepairForceListsExactlyWhatLeft damages a log of 60 records in many
// ways and checks that a forced repair's cuts list, between them, exactly
// the indexes that left the log: contiguous, from the log's new last index
// plus one to its old last index, 60. (The review saw "13000 to 13031"
// for a log that ended at 12992: the damaged record, and a segment whose
// header was damaged, were left out.)
func TestRepairForceListsExactlyWhatLeft(t *testing.T) {
	type corruptFunc func(t *testing.T, fs *vfs.MemFS, segs []SegmentInfo)
	mid := func(segs []SegmentInfo) SegmentInfo { return segs[len(segs)/2] }
	record := func(k int, change func(b []byte, f frameSpan)) corruptFunc {
		return func(t *testing.T, fs *vfs.MemFS, segs []SegmentInfo) {
			s := mid(segs)
			fr, _ := frames(t, fs, s.Path)
			f := fr[(k+len(fr))%len(fr)]
			damage(t, fs, s.Path, func(b []byte) []byte { change(b, f); return b })
		}
	}
	flip := func(b []byte, f frameSpan) { b[f.start+20] ^= 0xff }
	zero := func(b []byte, f frameSpan) { clear(b[f.start:f.end]) }
	for _, c := range []struct {
		name    string
		corrupt corruptFunc
	}{
		{"damaged record in a segment", record(1, flip)},
		{"damaged first record of a segment", record(0, flip)},
		{"damaged last record of a sealed segment", record(-1, flip)},
		{"zeroed record in a segment", record(1, zero)},
		{"damaged segment header", func(t *testing.T, fs *vfs.MemFS, segs []SegmentInfo) {
			damage(t, fs, mid(segs).Path, func(b []byte) []byte { b[20] ^= 1; return b })
		}},
		{"garbage after a sealed segment", func(t *testing.T, fs *vfs.MemFS, segs []SegmentInfo) {
			damage(t, fs, mid(segs).Path, func(b []byte) []byte { return append(b, 0, 0, 7) })
		}},
		{"damaged last record of the newest segment", func(t *testing.T, fs *vfs.MemFS, segs []SegmentInfo) {
			s := segs[len(segs)-1]
			fr, _ := frames(t, fs, s.Path)
			damage(t, fs, s.Path, func(b []byte) []byte { b[fr[len(fr)-1].start+20] ^= 0xff; return b })
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := vfs.NewMem()
			l := mustOpen(t, memOpts(fs, 1024))
			appendN(t, l, 60)
			segs := l.Segments()
			l.Close()
			c.corrupt(t, fs, segs)
			res, err := Repair(fs, testDir, RepairOptions{Force: true})
			if err != nil {
				t.Fatal(err)
			}
			next := res.LastIndex + 1
			for _, cut := range res.Cuts {
				if cut.FirstLostIndex == 0 {
					continue
				}
				if cut.FirstLostIndex != next || cut.LastLostIndex < cut.FirstLostIndex {
					t.Fatalf("cut of %s lists %d to %d, want it to start at %d; cuts:\n%+v",
						cut.Path, cut.FirstLostIndex, cut.LastLostIndex, next, res.Cuts)
				}
				next = cut.LastLostIndex + 1
			}
			if next != 61 || res.LastIndex >= 60 {
				t.Fatalf("the log ends at %d after the repair, and the cuts list indexes up to %d, want 60; cuts:\n%+v",
					res.LastIndex, next-1, res.Cuts)
			}
			rep, err := Verify(fs, testDir, VerifyOptions{})
			if err != nil || !rep.OK() || rep.LastIndex != res.LastIndex {
				t.Fatalf("after the repair: last %d, want %d\n%s", rep.LastIndex, res.LastIndex, problemsString(rep.Problems))
			}
			es, err := readAll(fs, testDir, 0)
			if err != nil {
				t.Fatal(err)
			}
			checkEntries(t, es, 1, res.LastIndex)
		})
	}
}
