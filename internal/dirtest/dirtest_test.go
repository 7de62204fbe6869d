package dirtest

import (
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that records failures instead of stopping.
type recorder struct {
	testing.TB
	errors int
}

func (r *recorder) Errorf(string, ...any) { r.errors++ }
func (r *recorder) Helper()               {}

func TestRequireUnchanged(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", "1")
	before := Snapshot(t, dir)
	for _, tc := range []struct {
		name   string
		change func()
		undo   func()
		errors int
	}{
		{"nothing", func() {}, func() {}, 0},
		{"changed", func() { write("a", "2") }, func() { write("a", "1") }, 1},
		{"created file", func() { write("b", "") }, func() { os.Remove(filepath.Join(dir, "b")) }, 1},
		{"created dir", func() { os.Mkdir(filepath.Join(dir, "d"), 0o755) }, func() { os.Remove(filepath.Join(dir, "d")) }, 1},
		{"removed", func() { os.Remove(filepath.Join(dir, "a")) }, func() { write("a", "1") }, 1},
	} {
		tc.change()
		r := &recorder{TB: t}
		RequireUnchanged(r, dir, before, tc.name)
		if r.errors != tc.errors {
			t.Errorf("%s: %d failures reported, want %d", tc.name, r.errors, tc.errors)
		}
		tc.undo()
	}
	if got := Snapshot(t, filepath.Join(dir, "missing")); len(got) != 0 {
		t.Errorf("snapshot of a missing directory: %v", got)
	}
}
