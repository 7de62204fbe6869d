package format

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The fixtures in testdata/fixtures freeze format version 1 byte for byte.
// If a test here fails, the encoding changed: that is a new format version,
// not a fixture to regenerate. Regenerate (-update) only to add a fixture.

func fixtureEntries() []testEntry {
	return []testEntry{
		{[]byte(""), []byte("the empty key"), EntryPut},
		{[]byte("\x00\xff binary"), []byte{0, 1, 2, 0xfe, 0xff}, EntryPut},
		{[]byte("acct:1"), []byte("100"), EntryPut},
		{[]byte("acct:2"), nil, EntryDelete},
		{[]byte("acct:3"), nil, EntryPut},
		{[]byte("long"), bytes.Repeat([]byte("a value longer than 127 bytes, "), 6), EntryPut},
		{[]byte("zz"), []byte("last"), EntryPut},
	}
}

func fixtureFrames() []testFrame {
	return []testFrame{
		{FrameWALTxn, []byte("a transaction")},
		{FrameWALNoop, nil},
		{FrameXferCredit, []byte{0, 0, 0, 0}},
	}
}

func fixtureHeader() []byte { return AppendHeader(nil, MagicCheckpoint, []byte("fixture ext")) }

// checkFixture compares got with the committed fixture (or writes it with
// -update) and returns the committed bytes.
func checkFixture(t *testing.T, name string, got []byte, exact bool) []byte {
	t.Helper()
	path := filepath.Join("testdata", "fixtures", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if exact && !bytes.Equal(got, want) {
		t.Fatalf("%s: the encoder no longer writes format v1:\ngot\n%swant\n%s", name, hexDump(got), hexDump(want))
	}
	return want
}

func TestFixtureHeader(t *testing.T) {
	want := checkFixture(t, "header-v1.bin", fixtureHeader(), true)
	h, err := ReadHeader(bytes.NewReader(want), "header-v1.bin", MagicCheckpoint)
	if err != nil || h.Version != 1 || string(h.Ext) != "fixture ext" {
		t.Fatalf("%+v %v", h, err)
	}
}

func TestFixtureFrames(t *testing.T) {
	want := checkFixture(t, "frame-v1.bin", appendFrames(nil, fixtureFrames()), true)
	got, _, err := readAll(NewFrameReader(bytes.NewReader(want), "frame-v1.bin", 0, int64(len(want)), false))
	if err != io.EOF || !sameFrames(got, fixtureFrames()) {
		t.Fatalf("%d frames, %v", len(got), err)
	}
}

func TestFixtureBlock(t *testing.T) {
	want := checkFixture(t, "block-v1.bin", encodeBlock(t, CodecNone, fixtureEntries()), true)
	b, err := DecodeBlock(want, "block-v1.bin", 0)
	if err != nil || !sameEntries(entriesOf(b), fixtureEntries()) {
		t.Fatalf("%v", err)
	}
}

// TestFixtureBlockZstd freezes the block prefix and that the committed zstd
// block decodes. The compressed bytes themselves are klauspost/compress's
// choice and may change with the library without changing the format, so
// the encoder is held to producing a block that decodes the same.
func TestFixtureBlockZstd(t *testing.T) {
	fe := fixtureEntries() // the "user:..." keys sort before the last key, "zz"
	entries := append(append(fe[:len(fe)-1:len(fe)-1], benchEntries(40)...), fe[len(fe)-1])
	got := encodeBlock(t, CodecZstd, entries)
	want := checkFixture(t, "block-v1-zstd.bin", got, false)
	if !bytes.Equal(got[:BlockPrefixSize], want[:BlockPrefixSize]) || want[0] != byte(CodecZstd) {
		t.Fatalf("prefix %x, fixture %x", got[:BlockPrefixSize], want[:BlockPrefixSize])
	}
	for _, p := range [][]byte{want, got} {
		b, err := DecodeBlock(p, "block-v1-zstd.bin", 0)
		if err != nil || !sameEntries(entriesOf(b), entries) {
			t.Fatalf("%v", err)
		}
	}
}

// TestFixtureFile reads a whole small file: a header and block frames, the
// way checkpoints and deltas start.
func TestFixtureFile(t *testing.T) {
	file := AppendHeader(nil, MagicDelta, nil)
	file = AppendFrame(file, FrameBlock, encodeBlock(t, CodecNone, fixtureEntries()[:3]))
	file = AppendFrame(file, FrameBlock, encodeBlock(t, CodecNone, fixtureEntries()[3:]))
	want := checkFixture(t, "file-v1.bin", file, true)
	r := bytes.NewReader(want)
	if _, err := ReadHeader(r, "file-v1.bin", MagicDelta); err != nil {
		t.Fatal(err)
	}
	fr := NewFrameReader(r, "file-v1.bin", int64(HeaderSize(0)), int64(len(want)), false)
	var entries []testEntry
	for {
		fm, err := fr.Next()
		h, off, p := fm.FrameHeader, fm.Offset, fm.Payload
		if err == io.EOF {
			break
		}
		if err != nil || h.Type != FrameBlock {
			t.Fatalf("%v %d", err, h.Type)
		}
		b, err := DecodeBlock(p, "file-v1.bin", off)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, entriesOf(b)...)
	}
	if !sameEntries(entries, fixtureEntries()) {
		t.Fatal("entries differ")
	}
}
