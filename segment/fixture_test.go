package segment

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

var update = flag.Bool("update", false, "rewrite the files in testdata")

// fixtureV1Path is a segment written before markers existed (no segment
// info, seal or clean-shutdown records): it must still read.
const fixtureV1Path = "testdata/segment-v1.wal"

// fixtureV2Dir holds the two segments today's writer makes of
// fixtureEntries: the first sealed after record 4, the second with record
// 5 and the clean-shutdown record.
const fixtureV2Dir = "testdata/segment-v2"

// fixtureEntries are the records of the committed fixtures (the v1 one
// holds the first four).
var fixtureEntries = []Entry{
	{Index: 1, Term: 1, Type: format.FrameWALTxn, Data: []byte("hello, segment")},
	{Index: 2, Term: 1, Type: format.FrameWALNoop, Data: []byte{}},
	{Index: 3, Term: 1, Type: format.FrameWALConf, Data: []byte("conf")},
	{Index: 4, Term: 1, Type: format.FrameWALTxn, Data: bytes.Repeat([]byte{0xa5}, 100)},
	{Index: 5, Term: 1, Type: format.FrameWALTxn, Data: []byte("after the seal")},
}

// fixtureSegments writes the fixture's records with a Log, rotating after
// the fourth, and returns the segments' bytes by name (preallocated to 512).
func fixtureSegments(t testing.TB) map[string][]byte {
	fs := vfs.NewMem()
	opts := memOpts(fs, 512)
	opts.StoreID = [16]byte{'f', 'i', 'x', 't', 'u', 'r', 'e'}
	l := mustOpen(t, opts)
	for i, e := range fixtureEntries {
		if i == 4 {
			if err := l.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Append(e.Type, e.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return snapshot(t, fs, testDir)
}

// oneSegment writes the fixture's records into one segment, closed.
func oneSegment(t testing.TB) []byte {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 512))
	for _, e := range fixtureEntries {
		if _, err := l.Append(e.Type, e.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return readFile(t, fs, segPath(1))
}

// TestFixture freezes the segment format: the committed fixtures must read
// back, and today's writer must produce the v2 one byte for byte.
// Regenerate with -update only for an intended format change.
func TestFixture(t *testing.T) {
	got := fixtureSegments(t)
	if *update {
		for name, b := range got {
			writeTestdata(t, filepath.Join(fixtureV2Dir, name), b)
		}
		writeFuzzSeeds(t, oneSegment(t), "v2-")
		writeFuzzSeeds(t, got[format.SegmentName(1)], "v2-sealed-")
	}
	fs := vfs.NewMem()
	for name, b := range got {
		want, err := os.ReadFile(filepath.Join(fixtureV2Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("the writer no longer produces %s/%s byte for byte: the on-disk format changed", fixtureV2Dir, name)
		}
		writeFile(t, fs, filepath.Join(testDir, name), want)
	}
	checkFixture(t, fs, fixtureEntries)
	rep, _ := Verify(fs, testDir, VerifyOptions{})
	if !rep.Closed {
		t.Fatal("Verify does not see the clean-shutdown record")
	}
}

// TestFixtureV1 reads a segment written before markers existed.
func TestFixtureV1(t *testing.T) {
	want, err := os.ReadFile(fixtureV1Path)
	if err != nil {
		t.Fatal(err)
	}
	fs := vfs.NewMem()
	writeFile(t, fs, segPath(1), want)
	checkFixture(t, fs, fixtureEntries[:4])
	opts := memOpts(fs, 512) // and a new writer goes on with it
	opts.StoreID = [16]byte{'f', 'i', 'x', 't', 'u', 'r', 'e'}
	l := mustOpen(t, opts)
	appendN(t, l, 20)
	l.Close()
	if rep, err := Verify(fs, testDir, VerifyOptions{}); err != nil || !rep.OK() || rep.LastIndex != 24 || len(rep.Segments) < 2 {
		t.Fatalf("Verify after appending: %v %+v", err, rep)
	}
}

// checkFixture checks that the log in fs reads back as want and verifies.
func checkFixture(t *testing.T, fs vfs.FS, want []Entry) {
	t.Helper()
	es, err := readAll(fs, testDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(es) != fmt.Sprint(want) {
		t.Fatalf("read %v\nwant %v", es, want)
	}
	if rep, err := Verify(fs, testDir, VerifyOptions{}); err != nil || !rep.OK() || rep.Records != int64(len(want)) {
		t.Fatalf("Verify: %v %+v", err, rep)
	}
}

func writeTestdata(t testing.TB, path string, b []byte) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeFuzzSeeds writes FuzzReader's seed corpus: a fixture segment and
// damaged variants of it, each a case the reader must handle, named with
// prefix.
func writeFuzzSeeds(t testing.TB, seg []byte, prefix string) {
	fs := vfs.NewMem()
	writeFile(t, fs, segPath(1), seg)
	_, eod := allFrames(t, fs, segPath(1))
	seg = append(seg, make([]byte, max(0, eod+64-int64(len(seg))))...)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(seg)) }
	seeds := map[string][]byte{
		"valid":          seg,
		"trimmed":        seg[:eod],
		"torn":           seg[:eod-30],
		"header-only":    seg[:headerSize],
		"short-header":   seg[:40],
		"empty":          {},
		"frames-only":    seg[headerSize:eod],
		"frames-torn":    seg[headerSize : eod-7],
		"flipped-frame":  mod(func(b []byte) []byte { b[headerSize+20] ^= 0xff; return b }),
		"flipped-header": mod(func(b []byte) []byte { b[30] ^= 1; return b }),
		"garbage-after":  mod(func(b []byte) []byte { b[eod+40] = 9; return b }),
		"huge-length":    mod(func(b []byte) []byte { copy(b[headerSize+8:], []byte{0xff, 0xff, 0xff, 0x03}); return b }),
		"zeroed-frame":   mod(func(b []byte) []byte { clear(b[headerSize : headerSize+46]); return b }),
	}
	for name, b := range seeds {
		corpus := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		writeTestdata(t, filepath.Join("testdata/fuzz/FuzzReader", prefix+name), []byte(corpus))
	}
}

// FuzzReader feeds arbitrary bytes as a segment to the Reader and to
// Verify: no panic, allocation bounded by the input, every error a
// *format.CorruptionError, the two agree on whether the log is sound, and
// whatever the Reader returned re-encodes to a segment that reads back the
// same. Input that does not start with the segment magic is given a valid
// header first, so the fuzzer also explores the frames and records behind
// one (random bytes rarely pass a header checksum).
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if !bytes.HasPrefix(data, []byte(format.MagicSegment)) {
			h := segHeader{first: 1, term: 1}
			hdr, _ := h.encode()
			data = append(hdr, data...)
		}
		fs := vfs.NewMem()
		writeFile(t, fs, segPath(1), data)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		es, rerr := readAll(fs, testDir, 0)
		rep, verr := Verify(fs, testDir, VerifyOptions{})
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(8*len(data))+4<<20 {
			t.Fatalf("reading %d bytes allocated %d", len(data), grew)
		}
		if verr != nil {
			t.Fatalf("Verify: %v", verr)
		}
		if rerr != nil && !isCorruption(rerr) {
			t.Fatalf("Reader error is not a *format.CorruptionError: %v", rerr)
		}
		if (rerr == nil) != rep.OK() {
			t.Fatalf("Reader says %v, Verify says:\n%s", rerr, problemsString(rep.Problems))
		}
		if rep.Records < int64(len(es)) {
			t.Fatalf("Verify counted %d records, the Reader read %d", rep.Records, len(es))
		}
		if len(es) > 0 {
			checkReencode(t, es)
		}
	})
}

// checkReencode writes es as a segment and reads it back.
func checkReencode(t *testing.T, es []Entry) {
	h := segHeader{first: es[0].Index, term: es[0].Term}
	b, _ := h.encode()
	for _, e := range es {
		b = appendRecord(b, e.Type, e.Index, e.Term, e.Data)
	}
	fs := vfs.NewMem()
	writeFile(t, fs, segPath(es[0].Index), b)
	again, err := readAll(fs, testDir, 0)
	if err != nil || fmt.Sprint(again) != fmt.Sprint(es) {
		t.Fatalf("re-encoded entries read back as %v, %v", again, err)
	}
}
