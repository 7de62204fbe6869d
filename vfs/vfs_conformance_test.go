package vfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// newFSFunc returns a fresh, empty FS and an existing directory in it under
// which a test may do anything.
type newFSFunc func(t *testing.T) (fs FS, root string)

func TestConformanceOS(t *testing.T) {
	runConformance(t, func(t *testing.T) (FS, string) { return OSFS{}, t.TempDir() })
}

func TestConformanceMem(t *testing.T) {
	runConformance(t, func(t *testing.T) (FS, string) { return NewMem(), "/data" })
}

func TestConformanceMemRelative(t *testing.T) {
	runConformance(t, func(t *testing.T) (FS, string) { return NewMem(), "data" })
}

func TestConformanceErrorFS(t *testing.T) {
	runConformance(t, func(t *testing.T) (FS, string) { return NewErrorFS(NewMem(), nil), "/data" })
}

func TestConformanceErrorFSOverOS(t *testing.T) {
	noop := InjectorFunc(func(Op, string) error { return nil })
	runConformance(t, func(t *testing.T) (FS, string) { return NewErrorFS(OSFS{}, noop), t.TempDir() })
}

// runConformance checks the behaviour every FS implementation must share,
// so that code tested on MemFS behaves the same on the OS.
func runConformance(t *testing.T, newFS newFSFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, fs FS, root string)
	}{
		{"CreateWriteRead", testCreateWriteRead},
		{"ReadAt", testReadAt},
		{"WriteAt", testWriteAt},
		{"CreateTruncates", testCreateTruncates},
		{"OpenReadWrite", testOpenReadWrite},
		{"ReadOnly", testReadOnly},
		{"Truncate", testTruncate},
		{"Preallocate", testPreallocate},
		{"RenameReplaces", testRenameReplaces},
		{"RenameRefuses", testRenameRefuses},
		{"RenameDir", testRenameDir},
		{"Remove", testRemove},
		{"ListSorted", testListSorted},
		{"Stat", testStat},
		{"MkdirAll", testMkdirAll},
		{"Lock", testLock},
		{"NotExist", testNotExist},
		{"Sync", testSync},
		{"Closed", testClosed},
		{"OpenFileSurvivesRemove", testOpenFileSurvivesRemove},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, root := newFS(t)
			if err := fs.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			tt.fn(t, fs, root)
		})
	}
}

func testCreateWriteRead(t *testing.T, fs FS, root string) {
	name := filepath.Join(root, "f")
	f := mustCreate(t, fs, name)
	mustWrite(t, f, "hello")
	mustWrite(t, f, " world")
	if f.Name() != name {
		t.Errorf("Name() = %q, want %q", f.Name(), name)
	}
	wantSize(t, f, 11)
	mustClose(t, f)

	f = mustOpen(t, fs, name)
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil || string(got) != "hello world" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if n, err := f.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Errorf("Read at EOF = %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := f.Read(nil); n != 0 || err != nil {
		t.Errorf("empty Read = %d, %v; want 0, nil", n, err)
	}
}

func testReadAt(t *testing.T, fs FS, root string) {
	f := mustCreate(t, fs, filepath.Join(root, "f"))
	defer f.Close()
	mustWrite(t, f, "0123456789")
	buf := make([]byte, 4)
	if n, err := f.ReadAt(buf, 3); n != 4 || err != nil || string(buf) != "3456" {
		t.Errorf("ReadAt(3) = %d, %v, %q", n, err, buf)
	}
	if n, err := f.ReadAt(buf, 8); n != 2 || err != io.EOF || string(buf[:n]) != "89" {
		t.Errorf("ReadAt(8) = %d, %v, %q; want 2, io.EOF, \"89\"", n, err, buf[:n])
	}
	if n, err := f.ReadAt(buf, 10); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(10) = %d, %v; want 0, io.EOF", n, err)
	}
	if _, err := f.ReadAt(buf, -1); err == nil {
		t.Error("ReadAt(-1) succeeded")
	}
}

func testWriteAt(t *testing.T, fs FS, root string) {
	f := mustCreate(t, fs, filepath.Join(root, "f"))
	defer f.Close()
	mustWrite(t, f, "abcdef")
	if n, err := f.WriteAt([]byte("XY"), 2); n != 2 || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	if _, err := f.WriteAt([]byte("Z"), 8); err != nil {
		t.Fatal(err)
	}
	wantContents(t, f, "abXYef\x00\x00Z")
	// WriteAt does not move the offset Write uses.
	mustWrite(t, f, "!")
	wantContents(t, f, "abXYef!\x00Z")
	if _, err := f.WriteAt([]byte("x"), -1); err == nil {
		t.Error("WriteAt(-1) succeeded")
	}
}

func testCreateTruncates(t *testing.T, fs FS, root string) {
	name := filepath.Join(root, "f")
	f := mustCreate(t, fs, name)
	mustWrite(t, f, "old contents")
	mustClose(t, f)
	f = mustCreate(t, fs, name)
	defer f.Close()
	wantSize(t, f, 0)
	mustWrite(t, f, "new")
	wantContents(t, f, "new")
}

func testOpenReadWrite(t *testing.T, fs FS, root string) {
	name := filepath.Join(root, "f")
	f := mustCreate(t, fs, name)
	mustWrite(t, f, "abcdef")
	mustClose(t, f)
	f, err := fs.OpenReadWrite(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mustWrite(t, f, "XY") // at offset 0, not appended
	wantContents(t, f, "XYcdef")
}

func testReadOnly(t *testing.T, fs FS, root string) {
	name := filepath.Join(root, "f")
	f := mustCreate(t, fs, name)
	mustWrite(t, f, "abc")
	mustClose(t, f)
	f = mustOpen(t, fs, name)
	defer f.Close()
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("Write on a read-only file succeeded")
	}
	if _, err := f.WriteAt([]byte("x"), 0); err == nil {
		t.Error("WriteAt on a read-only file succeeded")
	}
	if err := f.Truncate(0); err == nil {
		t.Error("Truncate on a read-only file succeeded")
	}
	wantContents(t, f, "abc")
}

func testTruncate(t *testing.T, fs FS, root string) {
	f := mustCreate(t, fs, filepath.Join(root, "f"))
	defer f.Close()
	mustWrite(t, f, "abcdef")
	if err := f.Truncate(3); err != nil {
		t.Fatal(err)
	}
	wantContents(t, f, "abc")
	// Growing after a shrink must read zeros, not the cut bytes.
	if err := f.Truncate(5); err != nil {
		t.Fatal(err)
	}
	wantContents(t, f, "abc\x00\x00")
}

func testPreallocate(t *testing.T, fs FS, root string) {
	f := mustCreate(t, fs, filepath.Join(root, "f"))
	defer f.Close()
	mustWrite(t, f, "abc")
	if err := f.Preallocate(4096); err != nil {
		t.Fatal(err)
	}
	wantSize(t, f, 4096)
	want := append([]byte("abc"), make([]byte, 4093)...)
	wantContents(t, f, string(want))
	if err := f.Preallocate(10); err != nil { // smaller: changes nothing
		t.Fatal(err)
	}
	wantSize(t, f, 4096)
	// Writes into the preallocated range keep the size.
	if _, err := f.WriteAt([]byte("zz"), 100); err != nil {
		t.Fatal(err)
	}
	wantSize(t, f, 4096)
}

func testRenameReplaces(t *testing.T, fs FS, root string) {
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	writeNew(t, fs, a, "from a")
	writeNew(t, fs, b, "from b")
	if err := fs.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	wantFile(t, fs, b, "from a")
	wantNotExist(t, fs, a)
	// Across directories.
	sub := filepath.Join(root, "sub")
	mustMkdirAll(t, fs, sub)
	if err := fs.Rename(b, filepath.Join(sub, "c")); err != nil {
		t.Fatal(err)
	}
	wantFile(t, fs, filepath.Join(sub, "c"), "from a")
	wantNotExist(t, fs, b)
	// Onto itself: nothing happens.
	if err := fs.Rename(filepath.Join(sub, "c"), filepath.Join(sub, "c")); err != nil {
		t.Fatal(err)
	}
	wantFile(t, fs, filepath.Join(sub, "c"), "from a")
}

// testRenameRefuses checks the renames the OS refuses, which MemFS must
// refuse too lest code that works in tests fail on disk.
func testRenameRefuses(t *testing.T, fs FS, root string) {
	file, dir := filepath.Join(root, "f"), filepath.Join(root, "d")
	writeNew(t, fs, file, "x")
	mustMkdirAll(t, fs, filepath.Join(dir, "sub"))
	if err := fs.Rename(file, dir); err == nil {
		t.Error("rename of a file over a directory succeeded")
	}
	if err := fs.Rename(filepath.Join(dir, "sub"), file); err == nil {
		t.Error("rename of a directory over a file succeeded")
	}
	empty := filepath.Join(root, "empty")
	mustMkdirAll(t, fs, empty)
	if err := fs.Rename(filepath.Join(dir, "sub"), empty); !errors.Is(err, os.ErrExist) {
		t.Errorf("rename of a directory over an empty one: %v, want os.ErrExist (as os.Rename)", err)
	}
	if err := fs.Rename(dir, filepath.Join(dir, "sub", "inner")); err == nil {
		t.Error("rename of a directory into itself succeeded")
	}
	if err := fs.Rename(file, filepath.Join(root, "missing", "f")); !IsNotExist(err) {
		t.Errorf("rename into a missing directory: %v, want not-exist", err)
	}
	wantFile(t, fs, file, "x")
}

// testRenameDir checks that a directory moves with its contents.
func testRenameDir(t *testing.T, fs FS, root string) {
	from, to := filepath.Join(root, "a"), filepath.Join(root, "b")
	mustMkdirAll(t, fs, from)
	writeNew(t, fs, filepath.Join(from, "f"), "x")
	if err := fs.Rename(from, to); err != nil {
		t.Fatal(err)
	}
	wantFile(t, fs, filepath.Join(to, "f"), "x")
	wantNotExist(t, fs, from)
}

func testRemove(t *testing.T, fs FS, root string) {
	name := filepath.Join(root, "f")
	writeNew(t, fs, name, "x")
	if err := fs.Remove(name); err != nil {
		t.Fatal(err)
	}
	wantNotExist(t, fs, name)
	dir := filepath.Join(root, "d")
	mustMkdirAll(t, fs, dir)
	writeNew(t, fs, filepath.Join(dir, "f"), "x")
	if err := fs.Remove(dir); err == nil {
		t.Error("Remove of a non-empty directory succeeded")
	}
	if err := fs.Remove(filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove(dir); err != nil {
		t.Errorf("Remove of an empty directory: %v", err)
	}
	wantNotExist(t, fs, dir)
}

func testListSorted(t *testing.T, fs FS, root string) {
	for _, n := range []string{"c", "a", "B", "b"} {
		writeNew(t, fs, filepath.Join(root, n), n)
	}
	mustMkdirAll(t, fs, filepath.Join(root, "d"))
	names, err := fs.List(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"B", "a", "b", "c", "d"}; !slices.Equal(names, want) {
		t.Errorf("List = %q, want %q", names, want)
	}
	if names, err := fs.List(filepath.Join(root, "d")); err != nil || len(names) != 0 {
		t.Errorf("List(empty dir) = %q, %v", names, err)
	}
	if _, err := fs.List(filepath.Join(root, "a")); err == nil {
		t.Error("List of a file succeeded")
	}
}

func testStat(t *testing.T, fs FS, root string) {
	name := filepath.Join(root, "f")
	writeNew(t, fs, name, "12345")
	fi, err := fs.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Name() != "f" || fi.Size() != 5 || fi.IsDir() || !fi.Mode().IsRegular() {
		t.Errorf("Stat(file) = name %q size %d dir %v mode %v", fi.Name(), fi.Size(), fi.IsDir(), fi.Mode())
	}
	fi, err = fs.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Name() != filepath.Base(root) {
		t.Errorf("Stat(dir) = name %q dir %v", fi.Name(), fi.IsDir())
	}
}

func testMkdirAll(t *testing.T, fs FS, root string) {
	deep := filepath.Join(root, "a", "b", "c")
	mustMkdirAll(t, fs, deep)
	mustMkdirAll(t, fs, deep) // idempotent
	writeNew(t, fs, filepath.Join(deep, "f"), "x")
	if _, err := fs.Create(filepath.Join(root, "missing", "f")); !IsNotExist(err) {
		t.Errorf("Create in a missing directory: %v, want not-exist", err)
	}
	file := filepath.Join(root, "file")
	writeNew(t, fs, file, "x")
	if err := fs.MkdirAll(file, 0o755); err == nil {
		t.Error("MkdirAll over a file succeeded")
	}
	if err := fs.MkdirAll(filepath.Join(file, "sub"), 0o755); err == nil {
		t.Error("MkdirAll under a file succeeded")
	}
	if _, err := fs.Create(deep); err == nil {
		t.Error("Create over a directory succeeded")
	}
}

func testLock(t *testing.T, fs FS, root string) {
	name := filepath.Join(root, "LOCK")
	l1, err := fs.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(name); err != nil {
		t.Errorf("Lock did not create the file: %v", err)
	}
	if l2, err := fs.Lock(name); !errors.Is(err, ErrLocked) {
		if l2 != nil {
			l2.Close()
		}
		t.Fatalf("second Lock: %v, want ErrLocked", err)
	}
	other, err := fs.Lock(filepath.Join(root, "OTHER"))
	if err != nil {
		t.Fatalf("Lock of another file: %v", err)
	}
	other.Close()
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	l3, err := fs.Lock(name)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	l3.Close()
}

func testNotExist(t *testing.T, fs FS, root string) {
	missing := filepath.Join(root, "missing")
	check := func(what string, err error) {
		t.Helper()
		if !IsNotExist(err) || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want not-exist", what, err)
		}
	}
	_, err := fs.Open(missing)
	check("Open", err)
	_, err = fs.OpenReadWrite(missing)
	check("OpenReadWrite", err)
	_, err = fs.Stat(missing)
	check("Stat", err)
	check("Remove", fs.Remove(missing))
	check("Rename", fs.Rename(missing, filepath.Join(root, "x")))
	_, err = fs.List(missing)
	check("List", err)
	check("SyncDir", fs.SyncDir(missing))
	_, err = fs.Stat(filepath.Join(missing, "deeper"))
	check("Stat below missing", err)
}

func testSync(t *testing.T, fs FS, root string) {
	name := filepath.Join(root, "f")
	f := mustCreate(t, fs, name)
	mustWrite(t, f, "x")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir(root); err != nil {
		t.Fatal(err)
	}
	mustClose(t, f)
	f = mustOpen(t, fs, name)
	defer f.Close()
	if err := f.Sync(); err != nil { // fsync of a read-only file is allowed
		t.Errorf("Sync of a read-only file: %v", err)
	}
}

func testClosed(t *testing.T, fs FS, root string) {
	f := mustCreate(t, fs, filepath.Join(root, "f"))
	mustClose(t, f)
	if _, err := f.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: %v, want os.ErrClosed", err)
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("ReadAt after Close: %v, want os.ErrClosed", err)
	}
	if err := f.Close(); err == nil {
		t.Error("second Close succeeded")
	}
}

func testOpenFileSurvivesRemove(t *testing.T, fs FS, root string) {
	name := filepath.Join(root, "f")
	writeNew(t, fs, name, "still here")
	f := mustOpen(t, fs, name)
	defer f.Close()
	if err := fs.Remove(name); err != nil {
		t.Fatal(err)
	}
	wantContents(t, f, "still here")
}

func mustCreate(t *testing.T, fs FS, name string) File {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustOpen(t *testing.T, fs FS, name string) File {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustWrite(t *testing.T, f File, s string) {
	t.Helper()
	if n, err := f.Write([]byte(s)); n != len(s) || err != nil {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

func mustClose(t *testing.T, f File) {
	t.Helper()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustMkdirAll(t *testing.T, fs FS, dir string) {
	t.Helper()
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// writeNew creates name holding s, without any sync.
func writeNew(t *testing.T, fs FS, name, s string) {
	t.Helper()
	f := mustCreate(t, fs, name)
	mustWrite(t, f, s)
	mustClose(t, f)
}

func wantSize(t *testing.T, f File, want int64) {
	t.Helper()
	if got, err := f.Size(); got != want || err != nil {
		t.Errorf("Size() = %d, %v; want %d", got, err, want)
	}
}

// wantContents checks the whole file through ReadAt and Size.
func wantContents(t *testing.T, f File, want string) {
	t.Helper()
	wantSize(t, f, int64(len(want)))
	buf := make([]byte, len(want))
	if n, err := f.ReadAt(buf, 0); n != len(want) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt(0) = %d, %v", n, err)
	}
	if !bytes.Equal(buf, []byte(want)) {
		t.Errorf("contents = %q, want %q", buf, want)
	}
}

// wantFile checks the contents of the named file.
func wantFile(t *testing.T, fs FS, name, want string) {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer f.Close()
	wantContents(t, f, want)
}

func wantNotExist(t *testing.T, fs FS, name string) {
	t.Helper()
	if _, err := fs.Stat(name); !IsNotExist(err) {
		t.Errorf("Stat(%s) = %v, want not-exist", name, err)
	}
}
