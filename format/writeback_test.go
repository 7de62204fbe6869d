package format

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kvtool/kvtool/vfs"
)

// wbFS is a file system whose files record their early write-back calls
// (vfs.WritebackStarter) and fail them with fail once set.
type wbFS struct {
	vfs.FS
	calls []string
	fail  error
}

type wbFile struct {
	vfs.File
	fs *wbFS
}

func (fs *wbFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &wbFile{f, fs}, nil
}

func (f *wbFile) StartWriteback(off, n int64, wait bool) error {
	f.fs.calls = append(f.fs.calls, fmt.Sprintf("%d+%d wait=%v", off, n, wait))
	return f.fs.fail
}

// TestAtomicFileWriteback checks that a file with SetWriteback hands every
// step of new bytes to the disk, in order and without gaps, waits only
// for steps handed over before, and leaves the rest to Close's fsync.
func TestAtomicFileWriteback(t *testing.T) {
	fs := &wbFS{FS: vfs.NewMem()}
	a, err := CreateAtomic(fs, "f")
	if err != nil {
		t.Fatal(err)
	}
	a.SetWriteback(100)
	for range 7 {
		writeAll(t, a, string(make([]byte, 60)))
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"0+120 wait=false",   // 120 bytes written: the first step goes out
		"0+120 wait=true",    // at 240: wait for it, hand over the next
		"120+120 wait=false", //
		"120+120 wait=true",  // at 360
		"240+120 wait=false", // the last 60 bytes are left to Close
	}
	if !slices.Equal(fs.calls, want) {
		t.Fatalf("write-back calls:\n%q\nwant\n%q", fs.calls, want)
	}
	if fi, err := fs.Stat("f"); err != nil || fi.Size() != 420 {
		t.Fatalf("published %v (%v), want 420 bytes", fi, err)
	}
}

// TestAtomicFileWritebackError checks that a failed write-back fails the
// file like a failed write: the error names the file, and Close publishes
// nothing.
func TestAtomicFileWritebackError(t *testing.T) {
	fs := &wbFS{FS: vfs.NewMem(), fail: errors.New("EIO")}
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := CreateAtomic(fs, filepath.Join("d", "f"))
	if err != nil {
		t.Fatal(err)
	}
	a.SetWriteback(10)
	if _, err := a.Write(make([]byte, 20)); err == nil || !errors.Is(err, fs.fail) {
		t.Fatalf("Write: %v, want the write-back's error", err)
	}
	if err := a.Close(); !errors.Is(err, fs.fail) {
		t.Fatalf("Close: %v, want the write-back's error", err)
	}
	if names, _ := fs.List("d"); len(names) != 0 {
		t.Fatalf("left %v", names)
	}
}
