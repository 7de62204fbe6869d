package segment

import (
	"sync"
	"testing"

	"github.com/kvtool/kvtool/vfs"
)

// readHookFS calls hook after each ReadAt of a file opened through it.
type readHookFS struct {
	vfs.FS
	hook func(name string, off int64, n int)
}

func (h *readHookFS) Open(name string) (vfs.File, error) {
	f, err := h.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return &readHookFile{File: f, fs: h}, nil
}

type readHookFile struct {
	vfs.File
	fs *readHookFS
}

func (f *readHookFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.fs.hook(f.Name(), off, n)
	return n, err
}

// TestVerifyBesideWriter: Verify of a log a running writer appends to
// (kvtool verify beside a running server, which it says it is safe
// beside) reads the newest segment's end of data, and the writer appends
// a record right after that read. What the scan then finds past the end
// it read is a record being appended, not a zeroed frame header hiding an
// intact frame (corruption): the log read is sound up to where it read.
func TestVerifyBesideWriter(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 1<<20))
	defer l.Close()
	appendN(t, l, 20)
	segs := l.Segments()
	newest := segs[len(segs)-1]
	eod := newest.Size
	var once sync.Once
	fired := false
	hooked := &readHookFS{FS: fs, hook: func(name string, off int64, n int) {
		if name == newest.Path && off <= eod && off+int64(n) > eod {
			once.Do(func() { appendN(t, l, 1); fired = true }) // the writer appends once the end was read
		}
	}}
	rep, err := Verify(hooked, testDir, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !fired {
		t.Fatal("the newest segment's end of data was never read")
	}
	for _, p := range rep.Problems {
		t.Errorf("a log appended to while verified: %v", p)
	}
	if rep.LastIndex < 20 {
		t.Fatalf("verified to index %d, want at least the 20 written before", rep.LastIndex)
	}
}

// TestVerifyBesideRotation: the writer rotates while Verify reads what was
// the newest segment when it listed the directory, so the scan finds it
// sealed, naming a next segment its listing does not have. That segment
// exists now: a rotation, not a gap (a lost end of the log).
func TestVerifyBesideRotation(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 1<<20))
	defer l.Close()
	appendN(t, l, 20)
	segs := l.Segments()
	newest := segs[len(segs)-1].Path
	var once sync.Once
	fired := false
	hooked := &readHookFS{FS: fs, hook: func(name string, off int64, n int) {
		if name == newest {
			once.Do(func() { // the listing is done: the writer rotates now
				if err := l.Rotate(); err != nil {
					t.Error(err)
				}
				fired = true
			})
		}
	}}
	rep, err := Verify(hooked, testDir, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !fired || len(l.Segments()) != len(segs)+1 {
		t.Fatalf("no rotation while the newest segment was read (%d segments, were %d)", len(l.Segments()), len(segs))
	}
	for _, p := range rep.Problems {
		t.Errorf("a log rotated while verified: %v", p)
	}
	if rep.LastIndex < 20 {
		t.Fatalf("verified to index %d, want at least the 20 written before", rep.LastIndex)
	}
}
