package table

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// fuzzSeeds are small tables, whole and damaged, for both fuzz targets.
func fuzzSeeds(t testing.TB) map[string][]byte {
	small := writeTableBytesOpts(t, fixtureEntries(), fixtureOpts)
	zopts := fixtureOpts
	zopts.Codec, zopts.BlockSize = format.CodecZstd, 512
	seeds := map[string][]byte{
		"fixture":      small,
		"fixture-zstd": writeTableBytesOpts(t, zstdFixtureEntries(), zopts),
		"empty":        writeTableBytes(t, nil),
		"random":       writeTableBytes(t, genEntries(rand.New(rand.NewPCG(13, 13)), 20, 6, 20, 0.3)),
		"truncated":    small[:len(small)-10],
		"no-footer":    small[:len(small)-FooterSize],
		"header-only":  small[:format.HeaderSize(len(fixtureOpts.Ext))],
	}
	flipped := bytes.Clone(small)
	flipped[len(flipped)/2] ^= 0x10
	seeds["flipped"] = flipped
	return seeds
}

// TestWriteFuzzSeeds rewrites testdata/fuzz with -update.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite the fuzz seeds")
	}
	for _, target := range []string{"FuzzOpen", "FuzzVerify"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range fuzzSeeds(t) {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzOpen feeds arbitrary bytes to Open, a full iteration and Get: no
// panic, every error is corruption (or an unknown version), and whatever
// reads cleanly re-encodes to a table that reads back the same.
func FuzzOpen(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := vfs.NewMem()
		writeFile(t, fs, "t", data)
		r, err := Open(fs, "t")
		if err != nil {
			requireCorruption(t, "Open", err)
			return
		}
		defer r.Close()
		entries, err := readAll(r.NewIter(nil, nil))
		if err != nil {
			requireCorruption(t, "iteration", err)
			return
		}
		for _, e := range entries {
			if _, _, found, err := r.Get(e.key); err != nil || !found {
				t.Fatalf("Get(%q) after a clean iteration = %v, %v", e.key, found, err)
			}
		}
		reencode(t, r.Info(), entries)
	})
}

// reencode writes entries again with the table's own header and footer
// fields and checks the copy reads back identically and verifies.
func reencode(t *testing.T, info Info, entries []entry) {
	fs := vfs.NewMem()
	opts := WriterOptions{Magic: info.Magic, Ext: info.Ext, Index: info.Index, FromIndex: info.FromIndex, Term: info.Term}
	again := writeTable(t, fs, "copy", entries, opts)
	if again.Puts != info.Puts || again.Tombstones != info.Tombstones || again.StateHash != info.StateHash {
		t.Fatalf("re-encoded info %+v, original %+v", again, info)
	}
	r := mustOpen(t, fs, "copy")
	got, err := readAll(r.NewIter(nil, nil))
	if err != nil || !equalEntries(got, entries) {
		t.Fatalf("re-encoded table reads %d entries, %v", len(got), err)
	}
}

// FuzzVerify feeds arbitrary bytes to Verify: no panic, only an unknown
// version stops it, and every problem names the file.
func FuzzVerify(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := vfs.NewMem()
		writeFile(t, fs, "t", data)
		rep, err := Verify(fs, "t", VerifyOptions{})
		if err != nil {
			if !errors.Is(err, format.ErrUnknownVersion) {
				t.Fatalf("Verify error %v", err)
			}
			return
		}
		for _, p := range rep.Problems {
			if p.Path != "t" || p.Offset < 0 || p.Offset > int64(len(data)) {
				t.Fatalf("problem %v", p)
			}
		}
		if rep.OK() {
			if _, err := Open(fs, "t"); err != nil {
				t.Fatalf("Verify passed but Open failed: %v", err)
			}
		}
	})
}
