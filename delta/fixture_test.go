package delta

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// update rewrites the byte-exact fixture in testdata.
var update = flag.Bool("update", false, "rewrite the byte-exact fixture in testdata")

// fixtureMeta fills every field of the header ext, the parent name
// included, with bytes that differ from field to field, so that a field
// moved, resized or dropped changes the file.
var fixtureMeta = Meta{
	StoreID: manifest.StoreID{0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f},
	From:    0x0102030405060708,
	To:      0x0102030405060800,
	Term:    0x0a0b0c0d,
	Parent:  format.CheckpointName(0x0102030405060708),
}

// fixtureEntry is one entry of the fixture delta.
type fixtureEntry struct {
	kind       format.EntryKind
	key, value string
}

// fixtureEntries are cut into several blocks at a 32-byte block size:
// puts (one with an empty value) and tombstones.
var fixtureEntries = []fixtureEntry{
	{format.EntryPut, "apple", "red"}, {format.EntryPut, "banana", "yellow"}, {format.EntryPut, "cherry", ""},
	{format.EntryDelete, "date", ""}, {format.EntryPut, "elderberry", "purple and small"},
	{format.EntryPut, "fig", "green"}, {format.EntryDelete, "grape", ""}, {format.EntryPut, "honeydew", "pale"},
}

// TestFixture freezes the delta file: writing the fixture entries must
// give testdata/delta-v1.bin byte for byte (header ext, blocks, index and
// footer), and reading that file must give the meta and the entries back.
func TestFixture(t *testing.T) {
	out := filepath.Join(t.TempDir(), "delta")
	w, err := NewWriter(vfs.Default, out, fixtureMeta, Options{BlockSize: 32, Uncompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fixtureEntries {
		if e.kind == format.EntryDelete {
			err = w.Delete([]byte(e.key))
		} else {
			err = w.Put([]byte(e.key), []byte(e.value))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "delta-v1.bin")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("delta writer output differs from %s: the format changed (run with -update only if that is intended, and bump format.Version)", path)
	}
	checkFixture(t, path)
}

// checkFixture reads the fixture delta at path back.
func checkFixture(t *testing.T, path string) {
	r, err := Open(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	info := r.Info()
	if r.Meta() != fixtureMeta || info.Blocks < 3 || info.Puts != 6 || info.Tombstones != 2 {
		t.Fatalf("fixture meta %+v, info %+v", r.Meta(), info)
	}
	var got []fixtureEntry
	err = r.ForEach(func(kind format.EntryKind, k, v []byte) error {
		got = append(got, fixtureEntry{kind, string(k), string(v)})
		return nil
	})
	if err != nil || !slices.Equal(got, fixtureEntries) {
		t.Fatalf("fixture entries %v, %v", got, err)
	}
	if rep, err := Verify(vfs.Default, path, table.VerifyOptions{}); err != nil || !rep.OK() {
		t.Fatalf("Verify: %v, %v", err, rep.Err())
	}
}
