package format

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kvtool/kvtool/vfs"
)

// dirNames lists a directory of the OS file system.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func writeAll(t *testing.T, a *AtomicFile, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if _, err := a.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAtomicFilePublish(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "MANIFEST")
	for _, content := range []string{"first version", "second, longer version"} {
		a, err := CreateAtomic(vfs.Default, path)
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, a, content[:5], content[5:])
		if a.Offset() != int64(len(content)) || a.Path() != path {
			t.Fatalf("Offset %d Path %q", a.Offset(), a.Path())
		}
		if names := dirNames(t, dir); len(names) != 2 && content == "second, longer version" {
			t.Fatalf("while writing: %q", names) // the old file and the temp file
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != content {
			t.Fatalf("published %q, want %q", got, content)
		}
		if names := dirNames(t, dir); !slices.Equal(names, []string{"MANIFEST"}) {
			t.Fatalf("left %q", names)
		}
	}
}

func TestAtomicFileCancel(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	a, err := CreateAtomic(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, a, "never published")
	if err := a.Cancel(); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("Cancel left %q", names)
	}
	if err := a.Cancel(); err != nil {
		t.Fatalf("second Cancel: %v", err)
	}
	if err := a.Close(); err == nil {
		t.Fatal("Close after Cancel published")
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("Write after Cancel succeeded")
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("Close after Cancel left %q", names)
	}
	// Cancelling a replacement keeps the old file.
	if err := WriteFileAtomic(vfs.Default, path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	a, _ = CreateAtomic(vfs.Default, path)
	writeAll(t, a, "new")
	a.Cancel()
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Fatalf("after Cancel the file holds %q", got)
	}
}

func TestAtomicFileCloseTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	a, err := CreateAtomic(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, a, "data")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// A stray Write after Close fails without spoiling the published file
	// or the Close result.
	if _, err := a.Write([]byte("late")); !errors.Is(err, ErrAtomicClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close after a late Write: %v", err)
	}
	if err := a.Cancel(); err != nil {
		t.Fatalf("Cancel after Close: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "data" {
		t.Fatalf("file holds %q", got)
	}
}

// TestAtomicFileFailures fails each step of the publish in turn and checks
// the error, what is left on disk, and that the error is sticky.
func TestAtomicFileFailures(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		op        vfs.Op
		published bool // the rename happened: the new content is there
	}{
		{vfs.OpWrite, false},
		{vfs.OpSync, false},
		{vfs.OpRename, false},
		{vfs.OpSyncDir, true},
	}
	for _, tt := range tests {
		t.Run(tt.op.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			fs := vfs.NewErrorFS(vfs.Default, vfs.FailAfter(tt.op, "", 0, boom))
			a, err := CreateAtomic(fs, path)
			if err != nil {
				t.Fatal(err)
			}
			_, werr := a.Write([]byte("new"))
			if tt.op == vfs.OpWrite {
				if !errors.Is(werr, boom) {
					t.Fatalf("Write: %v", werr)
				}
				if _, err := a.Write([]byte("more")); !errors.Is(err, boom) {
					t.Fatalf("write error not sticky: %v", err)
				}
			}
			err = a.Close()
			if !errors.Is(err, boom) {
				t.Fatalf("Close: %v", err)
			}
			if err2 := a.Close(); !errors.Is(err2, boom) {
				t.Fatalf("second Close forgot the failure: %v", err2)
			}
			want := "old"
			if tt.published {
				want = "new"
			}
			if got, _ := os.ReadFile(path); string(got) != want {
				t.Fatalf("file holds %q, want %q", got, want)
			}
			if names := dirNames(t, dir); !slices.Equal(names, []string{"f"}) {
				t.Fatalf("left %q", names)
			}
		})
	}
}

// TestAtomicFileCrash publishes over an old file on a MemFS and crashes at
// every sync and at points between them, with and without partial
// persistence of unsynced changes: before Close returns, a crash leaves the
// old content; after, the new one. Never a mixture, and a temp file left by
// a crash is recognisable as one.
func TestAtomicFileCrash(t *testing.T) {
	const path = "/data/MANIFEST"
	old, new := []byte("old content"), bytes.Repeat([]byte("new content "), 1000)
	setup := func() *vfs.MemFS {
		fs := vfs.NewMem()
		if err := fs.MkdirAll("/data", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := fs.SyncDir("/"); err != nil {
			t.Fatal(err)
		}
		if err := WriteFileAtomic(fs, path, old); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	check := func(img *vfs.MemFS, closed bool, what string) {
		t.Helper()
		names, err := img.List("/data")
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, n := range names {
			if n != "MANIFEST" && !IsTempName(n) {
				t.Fatalf("%s: unexpected file %q", what, n)
			}
		}
		got, err := img.ReadFile(path)
		if err != nil && !vfs.IsNotExist(err) {
			t.Fatalf("%s: %v", what, err)
		}
		switch {
		case bytes.Equal(got, new):
		case bytes.Equal(got, old) && !closed:
		default:
			t.Fatalf("%s: published file holds %d bytes (%.12q), closed=%v", what, len(got), got, closed)
		}
	}
	for seed := uint64(0); seed < 20; seed++ {
		var opts vfs.CrashOptions
		if seed > 0 {
			opts = vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, seed)), TearLast: true}
		}
		fs := setup()
		closed := false
		fs.SetSyncHook(func(n int64) { check(fs.CrashClone(opts), false, "at a sync") })
		a, err := CreateAtomic(fs, path)
		if err != nil {
			t.Fatal(err)
		}
		check(fs.CrashClone(opts), false, "after create")
		a.Write(new[:500])
		check(fs.CrashClone(opts), false, "mid write")
		a.Write(new[500:])
		check(fs.CrashClone(opts), false, "before Close")
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		closed = true
		fs.SetSyncHook(nil)
		check(fs.CrashClone(opts), closed, "after Close")
	}
}
