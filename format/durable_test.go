package format

import (
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/vfs"
)

// TestMkdirAllDurable checks that the directories MkdirAllDurable made
// survive a crash, also when the leaf existed but was not durable (a
// process killed between its mkdir and its fsync), and that a crash at any
// of its syncs leaves nothing half made.
func TestMkdirAllDurable(t *testing.T) {
	t.Run("new path", func(t *testing.T) {
		m := vfs.NewMem()
		var images []map[string]string
		m.SetSyncHook(func(int64) { images = append(images, m.CrashClone(vfs.CrashOptions{}).Tree()) })
		if err := MkdirAllDurable(m, "/a/b/c"); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"/a/": "", "/a/b/": "", "/a/b/c/": ""}
		if got := m.CrashClone(vfs.CrashOptions{}).Tree(); !maps.Equal(got, want) {
			t.Fatalf("after MkdirAllDurable a crash leaves %q, want %q", got, want)
		}
		// Deepest first: until the last sync the new tree is unreachable,
		// so no image shows a directory whose parent entry is lost.
		if len(images) != 3 || len(images[0]) != 0 || len(images[1]) != 0 {
			t.Fatalf("crash images at each sync: %q", images)
		}
	})
	t.Run("existing but not durable", func(t *testing.T) {
		m := vfs.NewMem()
		if err := MkdirAllDurable(m, "/data"); err != nil {
			t.Fatal(err)
		}
		if err := m.MkdirAll("/data/wal", 0o755); err != nil { // killed before its fsync
			t.Fatal(err)
		}
		if err := MkdirAllDurable(m, "/data/wal"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.CrashClone(vfs.CrashOptions{}).Stat("/data/wal"); err != nil {
			t.Fatalf("a directory found existing is not durable after MkdirAllDurable: %v", err)
		}
	})
	t.Run("relative", func(t *testing.T) {
		m := vfs.NewMem()
		if err := MkdirAllDurable(m, "data/snap"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.CrashClone(vfs.CrashOptions{}).Stat("/data/snap"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("on the OS", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		for range 2 { // the second time everything exists
			if err := MkdirAllDurable(vfs.Default, dir); err != nil {
				t.Fatal(err)
			}
		}
		if fi, err := vfs.Default.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("stat %s: %v", dir, err)
		}
	})
	t.Run("failed fsync", func(t *testing.T) {
		fs := vfs.NewErrorFS(vfs.NewMem(), vfs.FailOnce(vfs.OpSyncDir, "/a", nil))
		err := MkdirAllDurable(fs, "/a/b")
		if !errors.Is(err, vfs.ErrInjected) || !strings.Contains(err.Error(), "fsync directory /a") {
			t.Fatalf("err = %v, want the injected fsync failure naming /a", err)
		}
	})
}

// TestRenameDurable checks that a rename across directories is durable
// once RenameDurable returns, and that a crash at either of its syncs never
// loses the file (both names may show, never neither).
func TestRenameDurable(t *testing.T) {
	m := vfs.NewMem()
	for _, d := range []string{"/x", "/y"} {
		if err := MkdirAllDurable(m, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFileAtomic(m, "/x/f", []byte("data")); err != nil {
		t.Fatal(err)
	}
	var images []map[string]string
	m.SetSyncHook(func(int64) { images = append(images, m.CrashClone(vfs.CrashOptions{}).Tree()) })
	if err := RenameDurable(m, "/x/f", "/y/g"); err != nil {
		t.Fatal(err)
	}
	m.SetSyncHook(nil)
	if len(images) != 2 {
		t.Fatalf("a rename across directories made %d syncs, want 2", len(images))
	}
	for i, img := range images {
		if img["/x/f"] != "data" && img["/y/g"] != "data" {
			t.Fatalf("crash at sync %d lost the file: %q", i+1, img)
		}
	}
	want := map[string]string{"/x/": "", "/y/": "", "/y/g": "data"}
	if got := m.CrashClone(vfs.CrashOptions{}).Tree(); !maps.Equal(got, want) {
		t.Fatalf("after RenameDurable a crash leaves %q, want %q", got, want)
	}
}

// TestPublishFile checks that the published file stays open for writing
// (what a WAL segment needs) and that its name and bytes are durable.
func TestPublishFile(t *testing.T) {
	m := vfs.NewMem()
	if err := MkdirAllDurable(m, "/wal"); err != nil {
		t.Fatal(err)
	}
	f, tmp, err := CreateTemp(m, "/wal/seg", 7)
	if err != nil {
		t.Fatal(err)
	}
	if !IsTempName(filepath.Base(tmp)) {
		t.Fatalf("CreateTemp named %s", tmp)
	}
	if _, err := f.Write([]byte("header")); err != nil {
		t.Fatal(err)
	}
	if err := PublishFile(m, f, tmp, "/wal/seg"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("+more")); err != nil {
		t.Fatalf("write after PublishFile: %v", err)
	}
	f.Close()
	want := map[string]string{"/wal/": "", "/wal/seg": "header"}
	if got := m.CrashClone(vfs.CrashOptions{}).Tree(); !maps.Equal(got, want) {
		t.Fatalf("crash image %q, want %q", got, want)
	}

	for _, op := range []vfs.Op{vfs.OpSync, vfs.OpRename} {
		fs := vfs.NewErrorFS(m, vfs.FailOnce(op, "", nil))
		f, tmp, err := CreateTemp(fs, "/wal/other", 8)
		if err != nil {
			t.Fatal(err)
		}
		if err := PublishFile(fs, f, tmp, "/wal/other"); !errors.Is(err, vfs.ErrInjected) {
			t.Fatalf("failing %v: %v", op, err)
		}
		f.Close()
		if names, _ := m.List("/wal"); !slices.Equal(names, []string{"seg"}) {
			t.Fatalf("failing %v left %q", op, names)
		}
	}
}

// TestRemoveTemps checks that only temporary names go, durably, and that
// a missing directory is not an error.
func TestRemoveTemps(t *testing.T) {
	m := vfs.NewMem()
	if err := MkdirAllDurable(m, "/snap"); err != nil {
		t.Fatal(err)
	}
	keep := []string{CheckpointName(5), DeltaName(5, 9), "notes.txt"}
	drop := []string{TempName(CheckpointName(9), 1), TempName(DeltaName(9, 12), 2), TempName(ManifestName, 3)}
	for _, n := range append(slices.Clone(keep), drop...) {
		f, err := m.Create("/snap/" + n)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := m.SyncDir("/snap"); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveTemps(m, "/snap")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != len(drop) {
		t.Fatalf("removed %q, want %q", removed, drop)
	}
	slices.Sort(keep)
	if names, _ := m.CrashClone(vfs.CrashOptions{}).List("/snap"); !slices.Equal(names, keep) {
		t.Fatalf("after a crash /snap holds %q, want %q", names, keep)
	}
	if removed, err := RemoveTemps(m, "/missing"); err != nil || removed != nil {
		t.Fatalf("missing directory: %q, %v", removed, err)
	}
	before := m.SyncCount()
	if _, err := RemoveTemps(m, "/snap"); err != nil || m.SyncCount() != before {
		t.Fatalf("nothing to remove: err %v, %d syncs", err, m.SyncCount()-before)
	}
}
