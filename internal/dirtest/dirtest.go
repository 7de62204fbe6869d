// Package dirtest lets tests assert that a command, a read or a rejected
// input left a directory exactly as it was (bbolt's requireDBNoChange, for
// a whole directory): Snapshot describes every entry under a directory and
// RequireUnchanged compares against one.
//
// It is test support only; nothing outside _test.go files imports it.
package dirtest

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Snapshot describes every entry under dir: a directory as "dir", a file as
// its size and SHA-256. A dir that does not exist is empty. Any other
// error fails t.
func Snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	entries := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil && path == dir && os.IsNotExist(err):
			return filepath.SkipAll
		case err != nil:
			return err
		case d.IsDir():
			entries[path] = "dir"
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		entries[path] = fmt.Sprintf("%d bytes %x", len(b), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", dir, err)
	}
	return entries
}

// RequireUnchanged fails t for every entry under dir that changed,
// appeared or vanished since before was taken, saying that what did it.
func RequireUnchanged(t testing.TB, dir string, before map[string]string, what string) {
	t.Helper()
	RequireUnchangedExcept(t, dir, before, what, nil)
}

// RequireUnchangedExcept is RequireUnchanged ignoring the paths skip
// reports (files another writer owns, such as a running store's spare
// segment, which it prepares in the background at any time).
func RequireUnchangedExcept(t testing.TB, dir string, before map[string]string, what string, skip func(path string) bool) {
	t.Helper()
	after := Snapshot(t, dir)
	if skip != nil {
		before, after = maps.Clone(before), maps.Clone(after)
		maps.DeleteFunc(before, func(p, _ string) bool { return skip(p) })
		maps.DeleteFunc(after, func(p, _ string) bool { return skip(p) })
	}
	for _, path := range sortedKeys(before) {
		switch h, ok := after[path]; {
		case !ok:
			t.Errorf("%s removed %s", what, path)
		case h != before[path]:
			t.Errorf("%s changed %s: %s -> %s", what, path, before[path], h)
		}
	}
	for _, path := range sortedKeys(after) {
		if _, ok := before[path]; !ok {
			t.Errorf("%s created %s", what, path)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
