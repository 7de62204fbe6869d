package checkpoint

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// update rewrites the byte-exact fixture in testdata.
var update = flag.Bool("update", false, "rewrite the byte-exact fixture in testdata")

// fixtureMeta fills every field of the header ext with bytes that differ
// from field to field, so that a field moved, resized or dropped changes
// the file.
var fixtureMeta = Meta{
	StoreID: manifest.StoreID{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f},
	Index:   0x0203040506070809,
	Term:    0x0a0b0c0d,
	Shards:  0x01020304,
}

// fixtureState is cut into several blocks at a 32-byte block size; one
// value is empty.
var fixtureState = state{
	"apple": []byte("red"), "banana": []byte("yellow"), "cherry": {},
	"elderberry": []byte("purple and small"), "fig": []byte("green"), "grape": []byte("a bunch of them"),
}

// TestFixture freezes the checkpoint file: writing the fixture state must
// give testdata/checkpoint-v1.bin byte for byte (header ext, blocks,
// index and footer), and reading that file must give the meta and the
// state back.
func TestFixture(t *testing.T) {
	out := filepath.Join(t.TempDir(), "checkpoint")
	if _, err := WriteFile(vfs.Default, out, fixtureMeta, fixtureState, Options{BlockSize: 32, Uncompressed: true}); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "checkpoint-v1.bin")
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
		t.Fatalf("checkpoint writer output differs from %s: the format changed (run with -update only if that is intended, and bump format.Version)", path)
	}
	r, err := Open(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Meta() != fixtureMeta || r.Info().Blocks < 3 {
		t.Fatalf("fixture meta %+v, info %+v", r.Meta(), r.Info())
	}
	checkContents(t, r, fixtureState)
	if rep, err := Verify(vfs.Default, path, table.VerifyOptions{}); err != nil || !rep.OK() {
		t.Fatalf("Verify: %v, %v", err, rep.Err())
	}
}
