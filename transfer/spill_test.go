package transfer

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/vfs"
)

// partialWithTail leaves in a new directory a partial snapshot of src
// whose spilled tail holds entries the receiver reported as held, and
// returns the directory and the last entry held.
func partialWithTail(t *testing.T, src *memSource) (string, uint64) {
	t.Helper()
	id, err := src.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		src.append(fmt.Sprintf("tail:%d", i), []byte(strings.Repeat("t", 100)))
	}
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	fastCredits(t)
	o := transferOnce(t, src, sopts, ropts, nil, cutAfter(60000))
	if !errors.Is(o.recvErr, ErrPeerGone) {
		t.Fatalf("receive: %v", o.recvErr)
	}
	st, err := ReadLocalStatus(vfs.Default, dir)
	if err != nil || !st.Receiving || st.TailIndex <= id.Index+10 {
		t.Fatalf("no tail held after the first session: %+v %v", st, err)
	}
	return dir, st.TailIndex
}

// TestSpillKeptOnIOError: an I/O error opening the spilled WAL (a
// transient EIO) fails the session and removes nothing: the tail entries
// the receiver reported as held stay, and the next session resumes after
// them.
func TestSpillKeptOnIOError(t *testing.T) {
	src := newMemSource(t, 3000, 1)
	dir, held := partialWithTail(t, src)
	before := dirtest.Snapshot(t, dir)
	fs := vfs.NewErrorFS(vfs.Default, vfs.FailAfter(vfs.OpOpen, string(filepath.Separator)+format.WALDir+string(filepath.Separator), 0, syscall.EIO))
	sopts, ropts := smallOpts(dir)
	ropts.FS = fs
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if !errors.Is(o.recvErr, syscall.EIO) {
		t.Fatalf("receive with EIO on the WAL: %v", o.recvErr)
	}
	if after := dirtest.Snapshot(t, dir); !maps.Equal(before, after) {
		t.Fatalf("an I/O error changed the directory:\nbefore %v\nafter  %v", before, after)
	}
	sopts, ropts = smallOpts(dir)
	o = transferOnce(t, src, sopts, ropts, nil, nil)
	if o.recvErr != nil || o.sendErr != nil {
		t.Fatalf("receive: %v\nsend: %v", o.recvErr, o.sendErr)
	}
	if want := int64(src.LastIndex() - held); o.send.Entries != want {
		t.Fatalf("the resumed session sent %d tail entries, want %d (those after %d, held)", o.send.Entries, want, held)
	}
	checkInstalled(t, vfs.Default, dir, src)
}

// TestSpillRepairedOnCorruption: damage inside the spilled WAL (a record
// whose checksum fails, with intact records after it) is proven
// corruption: it is cut, and kept in a quarantine file, but the intact
// entries before it stay, and only the entries from the damaged one on are
// fetched again.
func TestSpillRepairedOnCorruption(t *testing.T) {
	src := newMemSource(t, 3000, 1)
	dir, held := partialWithTail(t, src)
	const damaged = 7 // the entry of tail:5 (the snapshot is at 1)
	if held <= damaged+2 {
		t.Fatalf("only %d entries held", held)
	}
	wal := filepath.Join(dir, format.WALDir)
	names, err := vfs.Default.List(wal)
	if err != nil || len(names) != 1 {
		t.Fatalf("wal: %v %v", names, err)
	}
	seg := filepath.Join(wal, names[0])
	b, err := readFileFS(vfs.Default, seg)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "tail:5\x64tt") // key, value length 100, value
	if i < 0 {
		t.Fatal("entry tail:5 not found in the spilled WAL")
	}
	f, err := vfs.Default.OpenReadWrite(seg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'T'}, int64(i+10)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	sopts, ropts := smallOpts(dir)
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if o.recvErr != nil || o.sendErr != nil {
		t.Fatalf("receive: %v\nsend: %v", o.recvErr, o.sendErr)
	}
	if want := int64(src.LastIndex() - (damaged - 1)); o.send.Entries != want {
		t.Fatalf("the session sent %d tail entries, want %d (from the damaged entry %d on)", o.send.Entries, want, damaged)
	}
	checkInstalled(t, vfs.Default, dir, src)
	names, _ = vfs.Default.List(wal)
	if !slicesContainsFunc(names, func(n string) bool { return strings.Contains(n, "quarantine") }) {
		t.Fatalf("the cut bytes were not kept: %v", names)
	}
}

func slicesContainsFunc(s []string, f func(string) bool) bool {
	for _, v := range s {
		if f(v) {
			return true
		}
	}
	return false
}

// TestSpillSegmentsBounded: the tail is spilled into segments of at most
// maxSpillSegment, whatever the source's segment size (64 MiB here, each
// preallocated whole and its zeros read back by every read of the
// received store), and a tail longer than one such segment rotates into
// more and installs the source's state.
func TestSpillSegmentsBounded(t *testing.T) {
	src := newMemSource(t, 500, 1)
	src.id.SegmentSize = 64 << 20
	if _, err := src.snapshot(); err != nil {
		t.Fatal(err)
	}
	val := []byte(strings.Repeat("t", 200))
	for i := 0; i*230 < 3*maxSpillSegment/2; i++ {
		src.append(fmt.Sprintf("tail:%d", i), val)
	}
	dir := filepath.Join(t.TempDir(), "data")
	sopts, ropts := smallOpts(dir)
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if o.recvErr != nil || o.sendErr != nil {
		t.Fatalf("receive: %v\nsend: %v", o.recvErr, o.sendErr)
	}
	wal := filepath.Join(dir, format.WALDir)
	names, err := vfs.Default.List(wal)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, n := range names {
		if _, ok := format.ParseSegmentName(n); !ok {
			continue
		}
		segs = append(segs, n)
		fi, err := os.Stat(filepath.Join(wal, n))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > maxSpillSegment {
			t.Errorf("spilled segment %s is %d bytes, more than %d", n, fi.Size(), maxSpillSegment)
		}
	}
	if len(segs) < 2 {
		t.Errorf("a tail of %d entries spilled into %v, want several segments", src.LastIndex()-1, segs)
	}
	checkInstalled(t, vfs.Default, dir, src)
}
