package table_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/delta"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// entry is one entry of a fixture.
type entry struct {
	kind       format.EntryKind
	key, value string
}

// The fixture entries are cut into several blocks at a 32-byte block
// size; one value is empty.
var (
	put, del          = format.EntryPut, format.EntryDelete
	checkpointEntries = []entry{
		{put, "apple", "red"}, {put, "banana", "yellow"}, {put, "cherry", ""},
		{put, "elderberry", "purple and small"}, {put, "fig", "green"}, {put, "grape", "a bunch of them"},
	}
	deltaEntries = []entry{
		{put, "apple", "red"}, {put, "banana", "yellow"}, {put, "cherry", ""}, {del, "date", ""},
		{put, "elderberry", "purple and small"}, {put, "fig", "green"}, {del, "grape", ""}, {put, "honeydew", "pale"},
	}
)

// TestKindFixtures freezes the file of each kind, header ext and footer
// fields included: writing the fixture entries with metadata that fills
// every ext field with bytes differing from field to field (so a field
// moved, resized or dropped changes the file) must give
// testdata/<kind>-v1.bin byte for byte, and reading that file must give
// the metadata and the entries back. Both fixtures were written before the
// two kinds moved onto table.Kind.
func TestKindFixtures(t *testing.T) {
	id := func(b byte) (s manifest.StoreID) {
		for i := range s {
			s[i] = b + byte(i)
		}
		return s
	}
	t.Run("checkpoint", func(t *testing.T) {
		m := checkpoint.Meta{StoreID: id(0x10), Index: 0x0203040506070809, Term: 0x0a0b0c0d, Shards: 0x01020304}
		checkKindFixture(t, checkpoint.Kind, "checkpoint-v1.bin", m, checkpointEntries)
	})
	t.Run("delta", func(t *testing.T) {
		m := delta.Meta{StoreID: id(0x20), From: 0x0102030405060708, To: 0x0102030405060800, Term: 0x0a0b0c0d,
			Parent: format.CheckpointName(0x0102030405060708)}
		checkKindFixture(t, delta.Kind, "delta-v1.bin", m, deltaEntries)
	})
}

func checkKindFixture[M comparable, I any](t *testing.T, k *table.Kind[M, I], file string, meta M, entries []entry) {
	out := filepath.Join(t.TempDir(), file)
	w, err := k.NewWriter(vfs.Default, out, meta, table.WriterOptions{BlockSize: 32, Codec: format.CodecNone}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
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
	path := filepath.Join("testdata", file)
	compareFixture(t, out, path)
	r, err := k.Open(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []entry
	err = r.ForEach(func(kind format.EntryKind, key, value []byte) error {
		got = append(got, entry{kind, string(key), string(value)})
		return nil
	})
	if err != nil || r.Meta() != meta || r.Reader.Info().Blocks < 3 || !slices.Equal(got, entries) {
		t.Fatalf("fixture meta %+v, info %+v, entries %v, %v", r.Meta(), r.Reader.Info(), got, err)
	}
	if rep, err := k.Verify(vfs.Default, path, table.VerifyOptions{}); err != nil || !rep.OK() {
		t.Fatalf("Verify: %v, %v", err, rep.Err())
	}
}

// compareFixture checks that the file written at out is byte for byte the
// fixture at path, after rewriting the fixture with -update.
func compareFixture(t *testing.T, out, path string) {
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if *table.Update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("writer output differs from %s: the format changed (run with -update only if that is intended, and bump format.Version)", path)
	}
}
