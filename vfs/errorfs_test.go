package vfs

import (
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// wantInjected checks that err is an injected error wrapping want and
// naming op and path.
func wantInjected(t *testing.T, err, want error, op Op, path string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want one wrapping %v", err, want)
	}
	if msg := err.Error(); !strings.Contains(msg, op.String()) || !strings.Contains(msg, path) {
		t.Errorf("error %q does not name op %q and path %q", msg, op, path)
	}
}

func TestFailOnce(t *testing.T) {
	m := NewMem()
	e := NewErrorFS(m, FailOnce(OpSync, "wal", nil))
	mustMkdirAll(t, e, "/db")
	other := mustCreate(t, e, "/db/other")
	mustSync(t, other) // path does not match
	f := mustCreate(t, e, "/db/wal-1")
	mustWrite(t, f, "x") // op does not match
	wantInjected(t, f.Sync(), ErrInjected, OpSync, "/db/wal-1")
	if m.SyncCount() != 1 {
		t.Errorf("SyncCount = %d after an injected failure, want 1 (not performed)", m.SyncCount())
	}
	mustSync(t, f) // later matching calls succeed
	mustSync(t, f)
}

func TestFailAfter(t *testing.T) {
	custom := errors.New("disk on fire")
	e := NewErrorFS(NewMem(), FailAfter(OpWrite, "seg", 2, custom))
	f := mustCreate(t, e, "/seg")
	mustWrite(t, f, "a")
	if _, err := f.WriteAt([]byte("b"), 1); err != nil { // WriteAt counts as OpWrite
		t.Fatal(err)
	}
	for range 3 { // the third and every later call fail
		_, err := f.Write([]byte("c"))
		wantInjected(t, err, custom, OpWrite, "/seg")
	}
	wantContents(t, f, "ab") // failed writes wrote nothing
	if _, err := NewErrorFS(NewMem(), FailAfter(OpCreate, "", 0, nil)).Create("/x"); !errors.Is(err, ErrInjected) {
		t.Errorf("FailAfter(0) let the first call through: %v", err)
	}
}

// TestInjectorOps checks that every FS and File method consults the
// injector with the documented op and path, and is not performed when it
// fails.
func TestInjectorOps(t *testing.T) {
	tests := []struct {
		op   Op
		path string
		do   func(fs FS, f File) error
	}{
		{OpCreate, "/d/new", func(fs FS, _ File) error { _, err := fs.Create("/d/new"); return err }},
		{OpOpen, "/d/f", func(fs FS, _ File) error { _, err := fs.Open("/d/f"); return err }},
		{OpOpen, "/d/f", func(fs FS, _ File) error { _, err := fs.OpenReadWrite("/d/f"); return err }},
		{OpRemove, "/d/f", func(fs FS, _ File) error { return fs.Remove("/d/f") }},
		{OpRename, "/d/f -> /d/g", func(fs FS, _ File) error { return fs.Rename("/d/f", "/d/g") }},
		{OpMkdir, "/d/sub", func(fs FS, _ File) error { return fs.MkdirAll("/d/sub", 0o755) }},
		{OpList, "/d", func(fs FS, _ File) error { _, err := fs.List("/d"); return err }},
		{OpStat, "/d/f", func(fs FS, _ File) error { _, err := fs.Stat("/d/f"); return err }},
		{OpSyncDir, "/d", func(fs FS, _ File) error { return fs.SyncDir("/d") }},
		{OpLock, "/d/LOCK", func(fs FS, _ File) error { _, err := fs.Lock("/d/LOCK"); return err }},
		{OpRead, "/d/f", func(_ FS, f File) error { _, err := f.Read(make([]byte, 1)); return err }},
		{OpRead, "/d/f", func(_ FS, f File) error { _, err := f.ReadAt(make([]byte, 1), 0); return err }},
		{OpWrite, "/d/f", func(_ FS, f File) error { _, err := f.Write([]byte("x")); return err }},
		{OpWrite, "/d/f", func(_ FS, f File) error { _, err := f.WriteAt([]byte("x"), 9); return err }},
		{OpSync, "/d/f", func(_ FS, f File) error { return f.Sync() }},
		{OpTruncate, "/d/f", func(_ FS, f File) error { return f.Truncate(0) }},
		{OpPreallocate, "/d/f", func(_ FS, f File) error { return f.Preallocate(100) }},
		{OpStat, "/d/f", func(_ FS, f File) error { _, err := f.Size(); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.op.String(), func(t *testing.T) {
			m := NewMem()
			mustMkdirAll(t, m, "/d")
			writeNew(t, m, "/d/f", "content")
			var fail atomic.Bool
			var seen []string
			e := NewErrorFS(m, InjectorFunc(func(op Op, path string) error {
				if !fail.Load() {
					return nil
				}
				seen = append(seen, op.String()+" "+path)
				return ErrInjected
			}))
			f, err := e.OpenReadWrite("/d/f")
			if err != nil {
				t.Fatal(err)
			}
			before, syncs := m.Tree(), m.SyncCount()
			fail.Store(true)
			wantInjected(t, tt.do(e, f), ErrInjected, tt.op, tt.path)
			if want := []string{tt.op.String() + " " + tt.path}; !slices.Equal(seen, want) {
				t.Errorf("injector saw %q, want %q", seen, want)
			}
			if after := m.Tree(); !maps.Equal(before, after) || m.SyncCount() != syncs {
				t.Errorf("failed %v was performed: %q -> %q", tt.op, before, after)
			}
			if err := f.Close(); err != nil { // Close is never injected
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestNilInjector(t *testing.T) {
	e := NewErrorFS(NewMem(), nil)
	f := mustCreate(t, e, "/f")
	mustWrite(t, f, "x")
	mustSync(t, f)
	if f.Name() != "/f" {
		t.Errorf("Name() = %q", f.Name())
	}
}

// TestFailOnceConcurrent checks that exactly one of many concurrent
// matching calls fails.
func TestFailOnceConcurrent(t *testing.T) {
	inj := FailOnce(OpStat, "", nil)
	var failures atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if inj.MaybeError(OpStat, "/x") != nil {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failures.Load(); n != 1 {
		t.Errorf("%d failures, want 1", n)
	}
}

func TestOpString(t *testing.T) {
	for op := OpCreate; op <= OpLock; op++ {
		if s := op.String(); s == "" || strings.HasPrefix(s, "Op(") {
			t.Errorf("Op %d has no name", op)
		}
	}
	if s := Op(0).String(); s != "Op(0)" {
		t.Errorf("Op(0).String() = %q", s)
	}
}

// TestErrorFSFileIsIO checks that a wrapped file still reads to io.EOF.
func TestErrorFSFileIsIO(t *testing.T) {
	e := NewErrorFS(NewMem(), nil)
	writeNew(t, e, "/f", "abc")
	f := mustOpen(t, e, "/f")
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || string(b) != "abc" {
		t.Errorf("ReadAll = %q, %v", b, err)
	}
}
