package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

const testDir = "/data/wal"

var testStore = [16]byte{'k', 'v', 't', 'o', 'o', 'l', '-', 't', 'e', 's', 't'}

// payload is the deterministic data of record i: its length varies so that
// batches and segment boundaries fall in many places.
func payload(i uint64) []byte {
	n := int(i*37%251) + 1
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i + uint64(j)*7)
	}
	return b
}

func entryType(i uint64) format.FrameType {
	return format.FrameType(i%3 + 1)
}

func memOpts(fs vfs.FS, segSize int64) Options {
	return Options{FS: fs, Dir: testDir, SegmentSize: segSize, StoreID: testStore}
}

func mustOpen(t testing.TB, opts Options) *Log {
	t.Helper()
	l, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// appendN appends records first..first+n-1 (payload(i), entryType(i)).
func appendN(t testing.TB, l *Log, n int) {
	t.Helper()
	for range n {
		i := l.LastIndex() + 1
		got, err := l.Append(entryType(i), payload(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if got != i {
			t.Fatalf("Append returned index %d, want %d", got, i)
		}
	}
}

// readAll reads every entry from index from on, copying the data.
func readAll(fs vfs.FS, dir string, from uint64) ([]Entry, error) {
	r, err := NewReader(fs, dir, from)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []Entry
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		e.Data = bytes.Clone(e.Data)
		out = append(out, e)
	}
}

// checkEntries checks that es are exactly records first..last written by
// appendN.
func checkEntries(t testing.TB, es []Entry, first, last uint64) {
	t.Helper()
	if uint64(len(es)) != last+1-first {
		t.Fatalf("read %d entries, want %d (%d..%d)", len(es), last+1-first, first, last)
	}
	for k, e := range es {
		i := first + uint64(k)
		if e.Index != i || e.Type != entryType(i) || !bytes.Equal(e.Data, payload(i)) {
			t.Fatalf("entry %d: got index %d type %d %d bytes, want index %d type %d %d bytes",
				k, e.Index, e.Type, len(e.Data), i, entryType(i), len(payload(i)))
		}
	}
}

// snapshot returns the bytes of every file in dir.
func snapshot(t testing.TB, fs vfs.FS, dir string) map[string][]byte {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string][]byte)
	for _, n := range names {
		m[n] = readFile(t, fs, filepath.Join(dir, n))
	}
	return m
}

func readFile(t testing.TB, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, fs vfs.FS, path string, b []byte) {
	t.Helper()
	if err := fs.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// copyFS returns a new MemFS holding the files of dir in fs.
func copyFS(t testing.TB, fs vfs.FS, dir string) *vfs.MemFS {
	t.Helper()
	out := vfs.NewMem()
	if err := out.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, b := range snapshot(t, fs, dir) {
		writeFile(t, out, filepath.Join(dir, n), b)
	}
	return out
}

func segPath(first uint64) string { return filepath.Join(testDir, format.SegmentName(first)) }

func problemsString(ps []Problem) string {
	var b bytes.Buffer
	for _, p := range ps {
		fmt.Fprintln(&b, p)
	}
	return b.String()
}

func isCorruption(err error) bool {
	return errors.Is(err, format.ErrCorruption) && format.AsCorruption(err) != nil
}

// waitFor polls cond until it holds, and fails the test after a generous
// deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
