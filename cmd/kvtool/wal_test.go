package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

const testRecords = 300

// newTestLog writes a log of testRecords transaction records (entry i puts
// acct:<i> = <10*i>) in small segments under a new data directory and
// returns the directory.
func newTestLog(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	l, err := segment.Open(segment.Options{FS: vfs.Default, Dir: filepath.Join(data, format.WALDir), SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= testRecords; i++ {
		if _, err := l.Append(format.FrameWALTxn, putRecord(fmt.Sprintf("acct:%d", i), fmt.Sprint(10*i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return data
}

// putRecord is the WAL transaction record of one put.
func putRecord(key, value string) []byte {
	return format.AppendTxnRecord(nil, []format.TxnEffect{{Kind: format.TxnPut, Key: key, Value: []byte(value)}})
}

// segments lists the segments of data with the library, to compare with.
func segments(t *testing.T, data string) []segment.SegmentInfo {
	t.Helper()
	segs, err := segment.List(vfs.Default, filepath.Join(data, format.WALDir))
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// flipByte flips the bits of the byte at off in path.
// tearTail leaves the newest segment seg as a crash during its last write
// does: the file keeps its preallocated size, the clean-shutdown record
// (the last 24 bytes of data) is gone and the last record lacks its last 5
// bytes.
func tearTail(t *testing.T, seg segment.SegmentInfo) {
	t.Helper()
	f, err := os.OpenFile(seg.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 24+5), seg.Size-24-5); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestWALList(t *testing.T) {
	data := newTestLog(t)
	segs := segments(t, data)
	if len(segs) < 3 {
		t.Fatalf("the test log has %d segments; want several", len(segs))
	}
	stdout, stderr, code := run(t, "--data", data, "wal", "list")
	mustCode(t, code, exitOK, stdout, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "SEGMENT FIRST LAST RECORDS BYTES TERM" {
		t.Errorf("header %q", lines[0])
	}
	if len(lines) != len(segs)+2 {
		t.Fatalf("%d lines for %d segments:\n%s", len(lines), len(segs), stdout)
	}
	for i, s := range segs {
		want := []string{s.Name, fmt.Sprint(s.FirstIndex), fmt.Sprint(s.LastIndex), fmt.Sprint(s.Records), fmt.Sprint(s.Size), "1"}
		if got := strings.Fields(lines[i+1]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %d: %q, want %q", i, got, want)
		}
	}
	if want := fmt.Sprintf("%d segments, %d records", len(segs), testRecords); !strings.Contains(lines[len(lines)-1], want) {
		t.Errorf("summary %q, want %q", lines[len(lines)-1], want)
	}

	stdout, stderr, code = run(t, "--data", data, "wal", "list", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	var doc struct {
		WALDir   string        `json:"wal_dir"`
		Segments []segmentJSON `json:"segments"`
	}
	mustJSON(t, stdout, &doc)
	var records int64
	for _, s := range doc.Segments {
		records += s.Records
	}
	if len(doc.Segments) != len(segs) || records != testRecords || doc.Segments[0].FirstIndex != 1 ||
		doc.Segments[len(segs)-1].LastIndex != testRecords || doc.WALDir != filepath.Join(data, "wal") {
		t.Errorf("wal list --json: %+v", doc)
	}

	stdout, stderr, code = run(t, "--data", data, "--quiet", "wal", "list")
	mustCode(t, code, exitOK, stdout, stderr)
	if strings.Contains(stdout, "records,") {
		t.Errorf("--quiet printed the summary:\n%s", stdout)
	}
}

func TestWALListEmpty(t *testing.T) {
	data := t.TempDir()
	os.Mkdir(filepath.Join(data, "wal"), 0o755)
	stdout, stderr, code := run(t, "--data", data, "wal", "list", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	var doc map[string]any
	mustJSON(t, stdout, &doc)
	if segs, ok := doc["segments"].([]any); !ok || len(segs) != 0 {
		t.Errorf("segments of an empty log: %v (want [], not null)", doc["segments"])
	}
}

func TestWALDump(t *testing.T) {
	data := newTestLog(t)
	segs := segments(t, data)
	stdout, stderr, code := run(t, "--data", data, "wal", "dump", "--from", "10", "--to", "20")
	mustCode(t, code, exitOK, stdout, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 12 || strings.Join(strings.Fields(lines[0]), " ") != "INDEX TERM SEGMENT OFFSET OP KEY VALUE" {
		t.Fatalf("dump --from 10 --to 20 printed %d lines:\n%s", len(lines), stdout)
	}
	for i, line := range lines[1:] {
		idx := uint64(10 + i)
		f := strings.Fields(line)
		if len(f) != 7 {
			t.Fatalf("line %q has %d fields, want 7", line, len(f))
		}
		want := fmt.Sprintf("%d 1 %s put acct:%d \"%d\"", idx, segmentOf(t, segs, idx), idx, 10*idx)
		if got := strings.Join(append(f[:3:3], f[4:]...), " "); got != want {
			t.Errorf("line %q, want %q (offset and spacing aside)", line, want)
		}
		off, _ := strconv.ParseInt(f[3], 10, 64)
		checkFrameAt(t, filepath.Join(data, "wal", f[2]), off, idx)
	}

	// The whole log, as JSON lines: one object per entry.
	stdout, stderr, code = run(t, "--data", data, "wal", "dump", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	lines = strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != testRecords {
		t.Fatalf("dump --json printed %d lines, want %d", len(lines), testRecords)
	}
	for i, line := range lines {
		var e entryJSON
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, line)
		}
		idx := uint64(i + 1)
		key, val := fmt.Sprintf("acct:%d", idx), fmt.Sprint(10*idx)
		if e.Index != idx || e.Term != 1 || e.Type != "txn" || e.Segment != segmentOf(t, segs, idx) || len(e.Ops) != 1 ||
			e.Ops[0].Op != "put" || e.Ops[0].Key == nil || *e.Ops[0].Key != key || e.Ops[0].Value == nil || *e.Ops[0].Value != val {
			t.Fatalf("line %d: %s", i, line)
		}
		checkFrameAt(t, filepath.Join(data, "wal", e.Segment), e.Offset, idx)
	}

	// --to past the end stops at the end.
	stdout, stderr, code = run(t, "--data", data, "wal", "dump", "--from", "299", "--to", "5000", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	if n := strings.Count(stdout, "\n"); n != 2 {
		t.Errorf("dump --from 299 --to 5000 printed %d entries, want 2", n)
	}
}

// TestWALDumpOps checks the decoding of every kind of entry: a transaction
// of several operations, a delete, keys and values that are not text, and
// a noop.
func TestWALDumpOps(t *testing.T) {
	data := t.TempDir()
	l, err := segment.Open(segment.Options{FS: vfs.Default, Dir: filepath.Join(data, format.WALDir), SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	records := []struct {
		typ  format.FrameType
		data []byte
	}{
		{format.FrameWALTxn, format.AppendTxnRecord(nil, []format.TxnEffect{
			{Kind: format.TxnPut, Key: "acct:1", Value: []byte("90")},
			{Kind: format.TxnPut, Key: "acct:2", Value: []byte("10")},
			{Kind: format.TxnDelete, Key: "tmp"},
		})},
		{format.FrameWALTxn, format.AppendTxnRecord(nil, []format.TxnEffect{{Kind: format.TxnPut, Key: "bin\xff", Value: []byte{0, 0xfe}}})},
		{format.FrameWALNoop, nil},
	}
	for _, r := range records {
		if _, err := l.Append(r.typ, r.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "--data", data, "wal", "dump")
	mustCode(t, code, exitOK, stdout, stderr)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n")[1:] {
		f := strings.Fields(line)
		got = append(got, strings.Join(append([]string{f[0]}, f[4:]...), " "))
	}
	want := []string{`1 put acct:1 "90"`, `1 put acct:2 "10"`, `1 del tmp`, `2 put "bin\xff" 0x00fe`, `3 noop (0 bytes)`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("wal dump (index and operation):\n%s\nwant\n%s\nfull output:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), stdout)
	}

	stdout, stderr, code = run(t, "--data", data, "wal", "dump", "--json", "--from", "2")
	mustCode(t, code, exitOK, stdout, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	wantJSON := []string{
		`"ops":[{"op":"put","key_base64":"Ymlu/w==","value_base64":"AP4="}]`,
		`"type":"noop","length":0}`,
	}
	if len(lines) != 2 {
		t.Fatalf("wal dump --json --from 2 printed %d lines:\n%s", len(lines), stdout)
	}
	for i, w := range wantJSON {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s\nwant it to contain %s", i, lines[i], w)
		}
	}

	// A transaction record that cannot be decoded (its frame is intact):
	// the dump goes on, marks it, and exits 3 naming where it is.
	l, err = segment.Open(segment.Options{FS: vfs.Default, Dir: filepath.Join(data, format.WALDir), SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(format.FrameWALTxn, []byte{0x01, 0x09}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = run(t, "--data", data, "wal", "dump", "--from", "4")
	mustCode(t, code, exitDamage, stdout, stderr)
	if !strings.Contains(stdout, " bad ") || !hasErrorLine(stderr, "0000000000000001.wal: entry 4 at offset ") {
		t.Errorf("wal dump of an undecodable record:\n%s%s", stdout, stderr)
	}
}

// TestWALDumpNotRetained checks that a range the log does not hold is an
// error saying which indexes it holds, not an empty dump.
func TestWALDumpNotRetained(t *testing.T) {
	data := newTestLog(t)
	for _, args := range [][]string{{"--from", "301"}, {"--from", "400", "--to", "500"}, {"--from", "1000", "--json"}} {
		stdout, stderr, code := run(t, append([]string{"--data", data, "wal", "dump"}, args...)...)
		mustCode(t, code, exitFailure, stdout, stderr)
		if !hasErrorLine(stderr, "holds indexes 1 to 300") {
			t.Errorf("%v: stderr %q does not say what the log holds", args, stderr)
		}
	}
	// Compaction dropped the first segment: a range below the log says so.
	segs := segments(t, data)
	if err := os.Remove(segs[0].Path); err != nil {
		t.Fatal(err)
	}
	first := segs[1].FirstIndex
	stdout, stderr, code := run(t, "--data", data, "wal", "dump", "--from", "1", "--to", "3")
	mustCode(t, code, exitFailure, stdout, stderr)
	if !hasErrorLine(stderr, fmt.Sprintf("holds indexes %d to 300", first)) {
		t.Errorf("stderr %q does not say what the log holds", stderr)
	}
	stdout, stderr, code = run(t, "--data", data, "wal", "dump", "--from", "1", "--to", fmt.Sprint(first))
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.Contains(stderr, fmt.Sprintf("the log starts at index %d", first)) {
		t.Errorf("a range that starts before the log: stderr %q", stderr)
	}
}

// segmentOf names the segment holding index.
func segmentOf(t *testing.T, segs []segment.SegmentInfo, idx uint64) string {
	t.Helper()
	for _, s := range segs {
		if s.FirstIndex <= idx && idx <= s.LastIndex {
			return s.Name
		}
	}
	t.Fatalf("no segment holds index %d", idx)
	return ""
}

// checkFrameAt checks that the frame at off in the segment at path holds
// the entry of index idx.
func checkFrameAt(t *testing.T, path string, off int64, idx uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := off + format.FrameHeaderSize
	if off <= 0 || at+8 > int64(len(b)) || binary.LittleEndian.Uint64(b[at:]) != idx {
		t.Errorf("%s: the frame at offset %d does not hold entry %d", path, off, idx)
	}
}

func TestWALVerifyClean(t *testing.T) {
	data := newTestLog(t)
	stdout, stderr, code := run(t, "--data", data, "wal", "verify")
	mustCode(t, code, exitOK, stdout, stderr)
	if want := fmt.Sprintf("ok: %d segments, %d records, indexes 1 to %d", len(segments(t, data)), testRecords, testRecords); !strings.Contains(stdout, want) {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	stdout, stderr, code = run(t, "--data", data, "wal", "verify", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	var doc verifyJSON
	mustJSON(t, stdout, &doc)
	if !doc.OK || doc.Records != testRecords || doc.Problems == nil || len(doc.Problems) != 0 {
		t.Errorf("verify --json on a clean log: %+v", doc)
	}
	if !strings.Contains(stdout, `"problems": []`) {
		t.Errorf("problems of a clean log are not []:\n%s", stdout)
	}
}

// TestWALVerifyCorruption damages one byte in the middle of an older
// segment: verify exits 3 naming the file and the offset of the damaged
// record, and repair refuses it without --force.
func TestWALVerifyCorruption(t *testing.T) {
	data := newTestLog(t)
	seg := segments(t, data)[1]
	flipByte(t, seg.Path, seg.Size/2)

	rep, err := segment.Verify(vfs.Default, filepath.Join(data, "wal"), segment.VerifyOptions{})
	if err != nil || len(rep.Problems) == 0 {
		t.Fatalf("segment.Verify: %v, %+v", err, rep)
	}
	want := rep.Problems[0]
	if want.Path != seg.Path || want.Offset > seg.Size/2 {
		t.Fatalf("the library reports %+v for a flip at %d of %s", want, seg.Size/2, seg.Path)
	}

	before := dirtest.Snapshot(t, data)
	stdout, stderr, code := run(t, "--data", data, "wal", "verify")
	mustCode(t, code, exitDamage, stdout, stderr)
	row := strings.Fields(strings.Split(stdout, "\n")[1])
	if len(row) < 3 || row[0] != seg.Path || row[1] != strconv.FormatInt(want.Offset, 10) || row[2] != "corruption" {
		t.Errorf("problem row %q, want %s %d corruption", row, seg.Path, want.Offset)
	}
	if !strings.Contains(stdout, "1 problem (1 corruption)") {
		t.Errorf("no count in\n%s", stdout)
	}
	if !hasErrorLine(stderr, "wal verify: 1 problem (1 corruption) in "+filepath.Join(data, "wal")) ||
		!strings.Contains(stderr, "kvtool: hint: run `kvtool --data "+data+" wal repair --dry-run --force`") {
		t.Errorf("stderr:\n%s", stderr)
	}

	stdout, stderr, code = run(t, "--data", data, "wal", "verify", "--json")
	mustCode(t, code, exitDamage, stdout, stderr)
	var doc verifyJSON
	mustJSON(t, stdout, &doc)
	if doc.OK || len(doc.Problems) != 1 || doc.Problems[0] != toProblemJSON(want) {
		t.Errorf("verify --json: %+v", doc)
	}

	// dump prints what comes before the damage, then exits 3 naming it.
	stdout, stderr, code = run(t, "--data", data, "wal", "dump", "--json")
	mustCode(t, code, exitDamage, stdout, stderr)
	if n := strings.Count(stdout, "\n"); n < int(seg.FirstIndex-1) || n >= testRecords {
		t.Errorf("dump printed %d entries before the damage in %s (first index %d)", n, seg.Name, seg.FirstIndex)
	}
	if !hasErrorLine(stderr, fmt.Sprintf("%s: corruption at offset %d", seg.Path, want.Offset)) {
		t.Errorf("dump stderr does not name the file and offset:\n%s", stderr)
	}

	// repair refuses without --force and says what --force would do.
	stdout, stderr, code = run(t, "--data", data, "wal", "repair")
	mustCode(t, code, exitDamage, stdout, stderr)
	if !hasErrorLine(stderr, "refused") || !strings.Contains(stderr, "--force would cut") || !strings.Contains(stdout, seg.Path) {
		t.Errorf("repair without --force:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	delete(before, filepath.Join(data, "LOCK")) // repair takes the lock
	os.Remove(filepath.Join(data, "LOCK"))
	dirtest.RequireUnchanged(t, data, before, "verify, dump and a refused repair")

	// --dry-run --force says what it would cut and changes nothing.
	stdout, stderr, code = run(t, "--data", data, "wal", "repair", "--dry-run", "--force", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	var res repairJSON
	mustJSON(t, stdout, &res)
	if !res.DryRun || len(res.Cuts) == 0 || res.Cuts[0].Path != seg.Path || res.Cuts[0].Offset != want.Offset {
		t.Errorf("repair --dry-run --force: %+v", res)
	}
	dirtest.RequireUnchanged(t, data, before, "repair --dry-run --force")

	// --force cuts, and the log verifies clean afterwards.
	stdout, stderr, code = run(t, "--data", data, "wal", "repair", "--force")
	mustCode(t, code, exitOK, stdout, stderr)
	for _, c := range res.Cuts {
		if _, err := os.Stat(c.QuarantinePath); err != nil {
			t.Errorf("quarantine file of %+v: %v", c, err)
		}
	}
	stdout, stderr, code = run(t, "--data", data, "wal", "verify")
	mustCode(t, code, exitOK, stdout, stderr)
	if want := fmt.Sprintf("indexes 1 to %d", res.LastIndex); !strings.Contains(stdout, want) {
		t.Errorf("verify after repair --force: %q, want %q", stdout, want)
	}
}

// TestWALTornTail tears the newest segment's last record: verify
// exits 3 with a repair hint, repair --dry-run changes nothing, repair cuts
// the tail into a quarantine file, and verify is clean again.
func TestWALTornTail(t *testing.T) {
	data := newTestLog(t)
	segs := segments(t, data)
	newest := segs[len(segs)-1]
	tearTail(t, newest)

	before := dirtest.Snapshot(t, data)
	stdout, stderr, code := run(t, "--data", data, "wal", "verify")
	mustCode(t, code, exitDamage, stdout, stderr)
	if !strings.Contains(stdout, newest.Path) || !strings.Contains(stdout, "torn-tail") {
		t.Errorf("verify stdout:\n%s", stdout)
	}
	if !strings.Contains(stderr, "kvtool: hint: run `kvtool --data "+data+" wal repair`") {
		t.Errorf("verify stderr lacks the repair hint:\n%s", stderr)
	}

	stdout, stderr, code = run(t, "--data", data, "wal", "repair", "--dry-run")
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.Contains(stdout, "dry run: would cut 1 range; nothing was changed") || !strings.Contains(stdout, ".quarantine") {
		t.Errorf("repair --dry-run stdout:\n%s", stdout)
	}
	dirtest.RequireUnchanged(t, data, before, "verify and repair --dry-run")

	stdout, stderr, code = run(t, "--data", data, "wal", "repair", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	var res repairJSON
	mustJSON(t, stdout, &res)
	if res.DryRun || len(res.Cuts) != 1 || res.LastIndex != testRecords-1 {
		t.Fatalf("repair: %+v", res)
	}
	c := res.Cuts[0]
	if c.Path != newest.Path || c.Kind != "torn-tail" || c.Bytes <= 0 || c.QuarantinePath == "" {
		t.Errorf("cut %+v", c)
	}
	if _, err := os.Stat(c.QuarantinePath); err != nil {
		t.Errorf("quarantine file: %v", err)
	}

	stdout, stderr, code = run(t, "--data", data, "wal", "verify")
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.Contains(stdout, fmt.Sprintf("indexes 1 to %d", testRecords-1)) {
		t.Errorf("verify after repair: %s", stdout)
	}
	stdout, stderr, code = run(t, "--data", data, "wal", "repair")
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.Contains(stdout, "nothing to repair") {
		t.Errorf("second repair: %s", stdout)
	}
}

// TestReadOnlyCommandsChangeNothing runs every read-only command, in every
// output mode, on a clean and on a damaged log, and checks that no byte
// changed and no file (LOCK included) was created.
func TestReadOnlyCommandsChangeNothing(t *testing.T) {
	clean := newTestLog(t)
	damaged := newTestLog(t)
	segs := segments(t, damaged)
	flipByte(t, segs[0].Path, segs[0].Size/2)
	newest := segs[len(segs)-1]
	os.Truncate(newest.Path, newest.Size-3)

	for _, data := range []string{clean, damaged} {
		before := dirtest.Snapshot(t, data)
		for _, cmd := range [][]string{
			{"wal", "list"}, {"wal", "dump"}, {"wal", "dump", "--from", "50", "--to", "60"},
			{"wal", "verify"}, {"wal", "repair", "--dry-run"}, {"wal", "repair", "--dry-run", "--force"},
		} {
			for _, mode := range [][]string{nil, {"--json"}, {"--quiet"}} {
				args := append(append([]string{"--data", data}, mode...), cmd...)
				stdout, stderr, code := run(t, args...)
				if code != exitOK && code != exitDamage {
					t.Errorf("%v: exit %d\n%s%s", args, code, stdout, stderr)
				}
				dirtest.RequireUnchanged(t, data, before, strings.Join(args, " "))
			}
		}
	}
}

func TestWALRotate(t *testing.T) {
	data := newTestLog(t)
	segs := segments(t, data)
	stdout, stderr, code := run(t, "--data", data, "wal", "rotate", "--segment-size", "8KiB")
	mustCode(t, code, exitOK, stdout, stderr)
	after := segments(t, data)
	if len(after) != len(segs)+1 {
		t.Fatalf("%d segments after rotate, want %d", len(after), len(segs)+1)
	}
	seg := after[len(after)-1]
	if seg.FirstIndex != testRecords+1 || seg.Records != 0 {
		t.Errorf("new segment %+v", seg)
	}
	if want := fmt.Sprintf("rotated: new segment %s starts at index %d", seg.Path, testRecords+1); !strings.Contains(stdout, want) {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if fi, err := os.Stat(seg.Path); err != nil || fi.Size() != 8<<10 {
		t.Errorf("new segment not preallocated to 8KiB: %v, %v", fi.Size(), err)
	}

	// Rotating again with an empty newest segment changes nothing.
	stdout, stderr, code = run(t, "--data", data, "wal", "rotate", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	var doc struct {
		Rotated bool        `json:"rotated"`
		Segment segmentJSON `json:"segment"`
	}
	mustJSON(t, stdout, &doc)
	if doc.Rotated || doc.Segment.Name != seg.Name || len(segments(t, data)) != len(after) {
		t.Errorf("second rotate: %+v", doc)
	}

	_, stderr, code = run(t, "--data", data, "wal", "rotate", "--segment-size", "0")
	mustCode(t, code, exitUsage, "", stderr)
}

// TestWALRotateManifestSize checks that without --segment-size the new
// segment gets the size the directory was created with.
func TestWALRotateManifestSize(t *testing.T) {
	data := newTestLog(t)
	m := &manifest.Manifest{StoreID: manifest.NewStoreID(), Shards: 1, SegmentSize: 12 << 10, WALFirstIndex: 1}
	if err := manifest.Publish(vfs.Default, data, m); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "--data", data, "wal", "rotate")
	mustCode(t, code, exitOK, stdout, stderr)
	segs := segments(t, data)
	if fi, err := os.Stat(segs[len(segs)-1].Path); err != nil || fi.Size() != 12<<10 {
		t.Errorf("new segment not preallocated to the manifest's 12KiB: %v, %v", fi.Size(), err)
	}
}

func TestWALRotateTornTail(t *testing.T) {
	data := newTestLog(t)
	segs := segments(t, data)
	newest := segs[len(segs)-1]
	tearTail(t, newest)
	stdout, stderr, code := run(t, "--data", data, "wal", "rotate")
	mustCode(t, code, exitDamage, stdout, stderr)
	if !strings.Contains(stderr, "kvtool: hint: run `kvtool --data "+data+" wal repair`") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// TestWALLocked checks that repair and rotate refuse a data directory
// another process holds, naming the holder, and change nothing.
func TestWALLocked(t *testing.T) {
	data := newTestLog(t)
	segs := segments(t, data)
	newest := segs[len(segs)-1]
	tearTail(t, newest)
	lock, err := vfs.Default.Lock(filepath.Join(data, format.LockName))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	before := dirtest.Snapshot(t, data)
	for _, cmd := range [][]string{{"wal", "repair"}, {"wal", "repair", "--force"}, {"wal", "rotate"}} {
		stdout, stderr, code := run(t, append([]string{"--data", data}, cmd...)...)
		mustCode(t, code, exitFailure, stdout, stderr)
		if !hasErrorLine(stderr, fmt.Sprintf("(holder: pid %d)", os.Getpid())) || !strings.Contains(stderr, "kvtool: hint: ") {
			t.Errorf("%v: stderr %q, want the holder named and a hint", cmd, stderr)
		}
	}
	dirtest.RequireUnchanged(t, data, before, "a locked repair or rotate")
}
