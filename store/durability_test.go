package store

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// TestCreateIsDurable checks that a store created in a new directory
// survives a power loss right after its first acknowledged commit: DATA,
// DATA/wal and DATA/snap are durable entries of their parents. The second
// case is a directory whose subdirectories a killed process made but never
// synced: a later open must make them durable, not trust that they are.
func TestCreateIsDurable(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, m *vfs.MemFS)
	}{
		{"new directory", func(*testing.T, *vfs.MemFS) {}},
		{"subdirectories left unsynced by a kill", func(t *testing.T, m *vfs.MemFS) {
			// An initialised directory (its manifest durable) whose
			// subdirectories a killed process made but never synced.
			s, err := Open(Options{FS: m, Dir: "/srv/data", Create: true, SegmentSize: 256 << 10})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			subdirs := []string{filepath.Join("/srv/data", format.WALDir), filepath.Join("/srv/data", format.SnapDir)}
			for _, d := range subdirs {
				names, _ := m.List(d)
				for _, n := range names {
					if err := m.Remove(filepath.Join(d, n)); err != nil {
						t.Fatal(err)
					}
				}
				if err := m.Remove(d); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.SyncDir("/srv/data"); err != nil {
				t.Fatal(err)
			}
			for _, d := range subdirs {
				if err := m.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := vfs.NewMem()
			tt.setup(t, m)
			s, err := Open(Options{FS: m, Dir: "/srv/data", Create: true, SegmentSize: 256 << 10})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Put(context.Background(), "k", []byte("acknowledged")); err != nil {
				t.Fatal(err)
			}
			img := m.CrashClone(vfs.CrashOptions{})
			s.Close()
			r, err := Open(Options{FS: img, Dir: "/srv/data"})
			if err != nil {
				t.Fatalf("after a crash right after the first commit: %v", err)
			}
			defer r.Close()
			if v, ok := r.Get("k"); !ok || string(v) != "acknowledged" {
				t.Fatalf("acknowledged put lost: %q %v", v, ok)
			}
		})
	}
}

// TestOpenRemovesLeftovers plants the temporary files a kill during a
// checkpoint, a delta and a manifest publish leaves behind: a read-only
// open changes nothing, a writable open removes them durably and keeps
// every other file.
func TestOpenRemovesLeftovers(t *testing.T) {
	m := vfs.NewMem()
	s, err := Open(Options{FS: m, Dir: "/d", Create: true, SegmentSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	putN(t, s, "k", 20)
	if _, err := s.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	putN(t, s, "j", 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join("/d", format.SnapDir)
	for _, d := range []string{"/d", snap, filepath.Join("/d", format.WALDir)} {
		if err := format.MkdirAllDurable(m, d); err != nil { // this test is not about creating them
			t.Fatal(err)
		}
	}
	leftovers := []string{
		filepath.Join(snap, format.TempName(format.CheckpointName(900), 1)),
		filepath.Join(snap, format.TempName(format.DeltaName(20, 25), 2)),
		filepath.Join("/d", format.TempName(format.ManifestName, 3)),
	}
	for _, p := range leftovers {
		if err := format.WriteFileAtomic(m, p, []byte("half written")); err != nil {
			t.Fatal(err)
		}
	}
	before := memTree(m)

	ro, err := Open(Options{FS: m, Dir: "/d", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
	after := memTree(m)
	delete(after, "/d/"+format.LockName)
	delete(before, "/d/"+format.LockName)
	if !maps.Equal(before, after) {
		t.Fatalf("a read-only open changed the directory:\nbefore %q\nafter  %q", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}

	w, err := Open(Options{FS: m, Dir: "/d"})
	if err != nil {
		t.Fatal(err)
	}
	img := memTree(m.CrashClone(vfs.CrashOptions{}))
	w.Close()
	for _, p := range leftovers {
		if _, ok := img[p]; ok {
			t.Errorf("%s survives a writable open (and a crash right after it)", p)
		}
	}
	for p := range before {
		if !slices.Contains(leftovers, p) && p != "/d/"+format.LockName {
			if _, ok := img[p]; !ok {
				t.Errorf("a writable open removed %s", p)
			}
		}
	}
}

// memTree maps every file of m to its contents (vfs.MemFS.Tree without
// the directories).
func memTree(m *vfs.MemFS) map[string]string {
	tree := m.Tree()
	maps.DeleteFunc(tree, func(p, _ string) bool { return strings.HasSuffix(p, "/") })
	return tree
}
