package checkpoint

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/table/tabletest"
	"github.com/kvtool/kvtool/vfs"
)

func TestCrashDuringWrite(t *testing.T) {
	src := randState(rand.New(rand.NewPCG(2, 2)), 4000, 400) // ~1 MiB: several buffer flushes
	path := filepath.Join(format.SnapDir, format.CheckpointName(testMeta.Index))
	images := tabletest.CrashImages(t, newDir(t), 2, func(fs vfs.FS) error {
		_, err := Write(fs, format.SnapDir, testMeta, src, Options{})
		return err
	})
	tabletest.CheckImages(t, images, "the checkpoint", func(_ int, img *vfs.MemFS) bool {
		return checkCrashImage(t, img, path, src)
	})
}

// checkCrashImage checks that the checkpoint at path is either absent or
// complete, verified and equal to src, and that List trusts no leftover
// temporary file. It reports whether the checkpoint is there.
func checkCrashImage(t *testing.T, fs vfs.FS, path string, src state) bool {
	t.Helper()
	list, err := List(fs, format.SnapDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range list {
		if i.Err != nil {
			t.Fatalf("List after a crash shows a damaged checkpoint: %v", i.Err)
		}
	}
	if _, err := fs.Stat(path); vfs.IsNotExist(err) {
		return false
	}
	rep, err := Verify(fs, path, table.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("a partial checkpoint is visible after a crash: %v, %v", err, rep.Err())
	}
	if len(list) != 1 || list[0].StateHash != src.hash() || list[0].Keys != uint64(len(src)) {
		t.Fatalf("crash image lists %+v", list)
	}
	return true
}

// TestWriteErrorsLeaveNothing fails each step of writing a checkpoint:
// the error names the checkpoint, and nothing is left under its name,
// except after a failed fsync of the directory. Then the rename happened
// and its durability is unknown: the checkpoint is there, complete, and a
// crash keeps it whole or not at all; the caller must not publish it (fail
// stop), and recovery, which trusts only what the manifest names, ignores
// it.
func TestWriteErrorsLeaveNothing(t *testing.T) {
	src := randState(rand.New(rand.NewPCG(3, 3)), 3000, 400)
	path := filepath.Join(format.SnapDir, format.CheckpointName(testMeta.Index))
	for _, op := range []vfs.Op{vfs.OpCreate, vfs.OpWrite, vfs.OpSync, vfs.OpRename, vfs.OpSyncDir} {
		for _, n := range []int{0, 1} {
			mem := newDir(t)
			fs := vfs.NewErrorFS(mem, vfs.FailAfter(op, "", n, nil))
			_, err := Write(fs, format.SnapDir, testMeta, src, Options{})
			if op != vfs.OpWrite && n > 0 {
				if err != nil {
					t.Fatalf("%v after %d: %v", op, n, err)
				}
				continue // only one of these per write
			}
			if !errors.Is(err, vfs.ErrInjected) || !strings.Contains(err.Error(), path) || !strings.HasPrefix(err.Error(), "kvtool/checkpoint: ") {
				t.Fatalf("failing %v: error %v does not name %s", op, err, path)
			}
			if op == vfs.OpSyncDir {
				if !checkCrashImage(t, mem, path, src) {
					t.Fatalf("failing %v: the renamed checkpoint is gone", op)
				}
				for _, img := range []*vfs.MemFS{mem.CrashClone(vfs.CrashOptions{}), mem.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(1, 1))})} {
					checkCrashImage(t, img, path, src)
				}
				continue
			}
			if names, _ := mem.List(format.SnapDir); len(names) != 0 {
				t.Fatalf("failing %v left %v", op, names)
			}
		}
	}
}
