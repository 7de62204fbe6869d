package delta

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/table/tabletest"
	"github.com/kvtool/kvtool/vfs"
)

// checkImages checks that in every image the file at path is absent or
// complete, verified (by verify) and holding exactly the state want (as
// read by stateOf: a file can be self-consistent and still wrong), that
// List functions trust no leftover temporary file, and that both outcomes
// occur.
func checkImages(t *testing.T, images []*vfs.MemFS, path string, verify func(vfs.FS, string) (*table.Report, error), stateOf func(vfs.FS, string) model, want model) {
	t.Helper()
	tabletest.CheckImages(t, images, path, func(i int, img *vfs.MemFS) bool {
		ckpts, err1 := checkpoint.List(img, format.SnapDir)
		deltas, err2 := List(img, format.SnapDir)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		for _, c := range ckpts {
			if c.Err != nil {
				t.Fatalf("image %d lists a damaged checkpoint: %v", i, c.Err)
			}
		}
		for _, d := range deltas {
			if d.Err != nil {
				t.Fatalf("image %d lists a damaged delta: %v", i, d.Err)
			}
		}
		if _, err := img.Stat(path); vfs.IsNotExist(err) {
			return false
		}
		if rep, err := verify(img, path); err != nil || !rep.OK() {
			t.Fatalf("image %d: a partial %s is visible: %v %v", i, path, err, rep.Err())
		}
		if got := stateOf(img, path); got.hash() != want.hash() || !equalModels(got, want) {
			t.Fatalf("image %d: %s verifies but holds state %016x (%d keys), want %016x (%d keys)", i, path, got.hash(), len(got), want.hash(), len(want))
		}
		return true
	})
}

func TestCrashDuringDeltaWrite(t *testing.T) {
	c := buildChain(t, rand.New(rand.NewPCG(8, 8)), 0, 500, 0, 5000, false)
	m := c.states[0]
	dirty := step(rand.New(rand.NewPCG(8, 9)), m, 4000, 5000)
	meta := Meta{StoreID: storeID, From: 100, To: 200, Term: 1, Parent: format.CheckpointName(100)}
	var info Info
	images := tabletest.CrashImages(t, c.fs, 1, func(fs vfs.FS) (err error) {
		info, err = Write(fs, format.SnapDir, meta, dirty, m, Options{Uncompressed: true})
		return err
	})
	base := readCheckpoint(t, c.fs, c.base)
	checkImages(t, images, info.Path, func(fs vfs.FS, p string) (*table.Report, error) {
		return Verify(fs, p, table.VerifyOptions{})
	}, func(fs vfs.FS, p string) model {
		return applyDelta(t, fs, readCheckpoint(t, fs, c.base), p)
	}, m)
	if equalModels(base, m) {
		t.Fatal("the delta changes nothing: the content check cannot fail")
	}
}

func TestCrashDuringMerge(t *testing.T) {
	c := buildChain(t, rand.New(rand.NewPCG(9, 9)), 3, 3000, 1000, 6000, false)
	var info checkpoint.Info
	images := tabletest.CrashImages(t, c.fs, 1, func(fs vfs.FS) (err error) {
		info, err = Merge(fs, format.SnapDir, c.base, c.deltas, MergeOptions{Options: Options{Uncompressed: true}})
		return err
	})
	checkImages(t, images, info.Path, func(fs vfs.FS, p string) (*table.Report, error) {
		return checkpoint.Verify(fs, p, table.VerifyOptions{})
	}, func(fs vfs.FS, p string) model {
		return readCheckpoint(t, fs, p)
	}, c.states[3])
}

// TestWriteAndMergeErrors fails each step of writing a delta and of a
// merge: the error names the output path and nothing is left under it.
func TestWriteAndMergeErrors(t *testing.T) {
	c := buildChain(t, rand.New(rand.NewPCG(10, 10)), 2, 3000, 2000, 6000, false)
	m := c.states[2]
	dirty := step(rand.New(rand.NewPCG(10, 11)), m, 3000, 6000)
	lastTo := func() uint64 { r, _ := Open(c.fs, c.deltas[1]); defer r.Close(); return r.Meta().To }()
	meta := Meta{StoreID: storeID, From: lastTo, To: lastTo + 10, Term: 2, Parent: strings.TrimPrefix(c.deltas[1], format.SnapDir+"/")}
	jobs := map[string]struct {
		out string
		run func(vfs.FS) error
	}{
		"delta": {snapPath(format.DeltaName(meta.From, meta.To)), func(fs vfs.FS) error {
			_, err := Write(fs, format.SnapDir, meta, dirty, m, Options{Uncompressed: true})
			return err
		}},
		"merge": {snapPath(format.CheckpointName(lastTo)), func(fs vfs.FS) error {
			_, err := Merge(fs, format.SnapDir, c.base, c.deltas, MergeOptions{Options: Options{Uncompressed: true}})
			return err
		}},
	}
	for name, job := range jobs {
		for _, op := range []vfs.Op{vfs.OpCreate, vfs.OpWrite, vfs.OpSync, vfs.OpRename} {
			mem := c.fs.CrashClone(vfs.CrashOptions{})
			before, _ := mem.List(format.SnapDir)
			err := job.run(vfs.NewErrorFS(mem, vfs.FailOnce(op, ".tmp-", nil)))
			if !errors.Is(err, vfs.ErrInjected) || !strings.Contains(err.Error(), job.out) {
				t.Fatalf("%s: failing %v: error %v does not name %s", name, op, err, job.out)
			}
			if after, _ := mem.List(format.SnapDir); strings.Join(after, " ") != strings.Join(before, " ") {
				t.Fatalf("%s: failing %v changed the directory: %v -> %v", name, op, before, after)
			}
		}
	}
}
