package table

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// fixtureEntries is the content of the committed fixtures: three blocks at
// a 64-byte block size, with a tombstone and an empty value.
func fixtureEntries() []entry {
	put := func(k, v string) entry { return entry{[]byte(k), []byte(v), format.EntryPut} }
	return []entry{
		put("apple", "red"), put("banana", "yellow"), put("cherry", ""),
		{[]byte("date"), nil, format.EntryDelete},
		put("elderberry", "purple and small"), put("fig", "green"),
		put("grape", "a bunch of them"), {[]byte("honeydew"), nil, format.EntryDelete},
	}
}

// zstdFixtureEntries compress well, so that the zstd fixture's blocks are
// really stored compressed.
func zstdFixtureEntries() []entry {
	var es []entry
	for i := 0; i < 60; i++ {
		es = append(es, entry{fmt.Appendf(nil, "key%03d", i), bytes.Repeat([]byte("value "), i%7), format.EntryPut})
	}
	es[17].kind, es[17].value = format.EntryDelete, nil
	return es
}

var fixtureOpts = WriterOptions{
	Magic: format.MagicDelta, Ext: []byte("fixture ext"), BlockSize: 64,
	Index: 42, FromIndex: 40, Term: 3,
}

// TestFixture freezes the table format: writing the fixture entries must
// give table-v1.bin byte for byte, and reading it must give them back.
func TestFixture(t *testing.T) {
	for _, c := range []struct {
		file      string
		entries   []entry
		codec     format.BlockCodec
		byteExact bool // zstd output may change with the library; its decoding may not
	}{
		{"table-v1.bin", fixtureEntries(), format.CodecNone, true},
		{"table-v1-zstd.bin", zstdFixtureEntries(), format.CodecZstd, false},
	} {
		t.Run(c.file, func(t *testing.T) {
			opts := fixtureOpts
			opts.Codec, opts.BlockSize = c.codec, 64
			if c.codec == format.CodecZstd {
				opts.BlockSize = 512
			}
			want := writeTableBytesOpts(t, c.entries, opts)
			path := filepath.Join("testdata", c.file)
			if *update {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.byteExact && !bytes.Equal(got, want) {
				t.Fatalf("writer output differs from %s: the format changed (run with -update only if that is intended, and bump format.Version)", path)
			}
			checkFixture(t, got, c.entries, c.codec)
		})
	}
}

func checkFixture(t *testing.T, b []byte, entries []entry, codec format.BlockCodec) {
	fs := vfs.NewMem()
	writeFile(t, fs, "t", b)
	r := mustOpen(t, fs, "t")
	info := r.Info()
	puts, tombs := countKinds(entries)
	if info.Blocks < 3 || info.Puts != puts || info.Tombstones != tombs || info.Index != 42 || info.FromIndex != 40 ||
		info.Term != 3 || info.Magic != format.MagicDelta || string(info.Ext) != "fixture ext" {
		t.Fatalf("fixture info %+v", info)
	}
	all, err := readAll(r.NewIter(nil, nil))
	if err != nil || !equalEntries(all, entries) {
		t.Fatalf("fixture entries %v, %v", all, err)
	}
	var bb blockBuf
	if err := r.loadBlock(0, &bb); err != nil || bb.blk.Codec() != codec {
		t.Fatalf("first block: codec %d, err %v; want codec %d", bb.blk.Codec(), err, codec)
	}
	mustVerifyOK(t, fs, "t")
}

func writeTableBytesOpts(t testing.TB, entries []entry, opts WriterOptions) []byte {
	fs := vfs.NewMem()
	writeTable(t, fs, "t", entries, opts)
	return readFile(t, fs, "t")
}
