package table

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// region is a byte range of a table that one checksum covers: the header,
// one frame.
type region struct {
	name     string
	from, to int64
}

// regionsOf splits a well-formed table into its header and frames.
func regionsOf(t *testing.T, b []byte) []region {
	t.Helper()
	extLen := binary.LittleEndian.Uint32(b[12:])
	off := int64(format.HeaderSize(int(extLen)))
	regs := []region{{"header", 0, off}}
	for off < int64(len(b)) {
		n := int64(binary.LittleEndian.Uint32(b[off+8:]))
		regs = append(regs, region{fmt.Sprintf("frame type %d", b[off+12]), off, off + format.FrameHeaderSize + n})
		off += format.FrameHeaderSize + n
	}
	if off != int64(len(b)) {
		t.Fatalf("frames end at %d, file at %d", off, len(b))
	}
	return regs
}

func regionOf(regs []region, p int64) region {
	for _, r := range regs {
		if p >= r.from && p < r.to {
			return r
		}
	}
	panic("offset outside the file")
}

// corruptFunc damages a copy of a file at offset p.
type corruptFunc func(b []byte, p int)

var corruptions = map[string]corruptFunc{
	"invert":  func(b []byte, p int) { b[p] ^= 0xff },
	"low-bit": func(b []byte, p int) { b[p] ^= 0x01 },
}

func TestCorruptEveryByte(t *testing.T) {
	entries := genEntries(rand.New(rand.NewPCG(9, 9)), 40, 8, 40, 0.25)
	for _, codec := range []format.BlockCodec{format.CodecNone, format.CodecZstd, format.CodecHuff0} {
		fs := vfs.NewMem()
		writeTable(t, fs, "t", entries, WriterOptions{Magic: format.MagicDelta, Ext: []byte("some ext"), BlockSize: 400, Codec: codec, Index: 9, Term: 1})
		clean := readFile(t, fs, "t")
		regs := regionsOf(t, clean)
		if len(regs) < 6 {
			t.Fatalf("want several blocks, got regions %v", regs)
		}
		for name, corrupt := range corruptions {
			if codec != format.CodecNone && name != "invert" {
				continue // zstd decoding is slow under -race; one pass suffices
			}
			for p := range clean {
				b := bytes.Clone(clean)
				corrupt(b, p)
				checkDamageFound(t, b, regionOf(regs, int64(p)), fmt.Sprintf("%s/%s@%d", codecName(codec), name, p), entries)
			}
		}
	}
}

// checkDamageFound checks that Verify reports damage inside the damaged
// region and that reading never returns wrong data silently.
func checkDamageFound(t *testing.T, b []byte, reg region, what string, entries []entry) {
	t.Helper()
	fs := vfs.NewMem()
	writeFile(t, fs, "t", b)
	rep, err := Verify(fs, "t", VerifyOptions{})
	if err != nil {
		t.Fatalf("%s: Verify error %v", what, err)
	}
	if !rep.problemIn(reg.from, reg.to) {
		t.Fatalf("%s: damage in %s [%d, %d) not reported there; problems: %v", what, reg.name, reg.from, reg.to, rep.Problems)
	}
	checkReadsNeverLie(t, fs, what, entries)
}

// checkReadsNeverLie opens the table and reads it all: every step either
// fails with corruption or returns exactly the original entries.
func checkReadsNeverLie(t *testing.T, fs vfs.FS, what string, entries []entry) {
	t.Helper()
	r, err := Open(fs, "t")
	if err != nil {
		requireCorruption(t, what+": Open", err)
		return
	}
	defer r.Close()
	got, err := readAll(r.NewIter(nil, nil))
	if err != nil {
		requireCorruption(t, what+": iteration", err)
	} else if !equalEntries(got, entries) {
		t.Fatalf("%s: iteration returned wrong entries silently", what)
	}
	for _, e := range entries {
		v, kind, found, err := r.Get(e.key)
		if err != nil {
			requireCorruption(t, what+": Get", err)
		} else if !found || kind != e.kind || !bytes.Equal(v, e.value) {
			t.Fatalf("%s: Get(%q) returned wrong data silently", what, e.key)
		}
	}
}

func requireCorruption(t *testing.T, what string, err error) {
	t.Helper()
	ce := format.AsCorruption(err)
	if ce == nil && !errors.Is(err, format.ErrUnknownVersion) {
		t.Fatalf("%s: error %v is not corruption", what, err)
	}
	if ce != nil && ce.Path != "t" {
		t.Fatalf("%s: corruption names path %q", what, ce.Path)
	}
}

func TestTruncatedAndExtended(t *testing.T) {
	fs := vfs.NewMem()
	entries := genEntries(rand.New(rand.NewPCG(10, 10)), 30, 8, 30, 0.2)
	writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 300})
	clean := readFile(t, fs, "t")
	for n := 0; n < len(clean); n++ {
		writeFile(t, fs, "t", clean[:n])
		if _, err := Open(fs, "t"); format.AsCorruption(err) == nil {
			t.Fatalf("Open of %d of %d bytes = %v", n, len(clean), err)
		}
		if rep, err := Verify(fs, "t", VerifyOptions{}); err != nil || rep.OK() {
			t.Fatalf("Verify of %d of %d bytes = %v, %v", n, len(clean), err, rep)
		}
	}
	for _, tail := range [][]byte{{0}, make([]byte, FooterSize), clean[len(clean)-FooterSize:]} {
		writeFile(t, fs, "t", append(bytes.Clone(clean), tail...))
		if rep, err := Verify(fs, "t", VerifyOptions{}); err != nil || rep.OK() {
			t.Fatalf("Verify with %d bytes appended = %v, %v", len(tail), err, rep)
		}
		checkReadsNeverLie(t, fs, fmt.Sprintf("%d bytes appended", len(tail)), entries)
	}
}

func TestVerifyReportsEveryDamagedBlock(t *testing.T) {
	fs := vfs.NewMem()
	entries := genEntries(rand.New(rand.NewPCG(11, 11)), 400, 8, 40, 0)
	writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 500})
	b := readFile(t, fs, "t")
	regs := regionsOf(t, b)
	damaged := []region{regs[2], regs[5], regs[6], regs[len(regs)-3]} // blocks
	for _, r := range damaged {
		b[r.from+20] ^= 0x40
	}
	writeFile(t, fs, "t", b)
	rep, err := Verify(fs, "t", VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range damaged {
		if !rep.problemIn(r.from, r.from+1) {
			t.Errorf("block at %d not reported; problems %v", r.from, rep.Problems)
		}
	}
	// Four blocks and the whole-file checksum.
	if len(rep.Problems) != len(damaged)+1 || rep.BadBlocks != len(damaged) || rep.Blocks != len(regs)-3-len(damaged) {
		t.Fatalf("problems %v, %d bad and %d good blocks of %d regions", rep.Problems, rep.BadBlocks, rep.Blocks, len(regs))
	}
	if !errors.Is(rep.Err(), format.ErrCorruption) {
		t.Fatalf("Err() = %v", rep.Err())
	}
}

func TestVerifyWithoutFooter(t *testing.T) {
	fs := vfs.NewMem()
	entries := genEntries(rand.New(rand.NewPCG(12, 12)), 300, 8, 40, 0)
	writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 500})
	b := readFile(t, fs, "t")
	b[len(b)-1] ^= 1 // damage the footer: the walk goes by frame lengths
	regs := regionsOf(t, b)
	b[regs[3].from+30] ^= 1
	writeFile(t, fs, "t", b)
	rep, err := Verify(fs, "t", VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 2 || !rep.problemIn(regs[3].from, regs[3].from+1) || rep.Blocks != len(regs)-3-1 {
		t.Fatalf("problems %v, %d blocks found of %d regions", rep.Problems, rep.Blocks, len(regs))
	}
	// Without a footer the index frames are found by walking: damage in
	// them is still reported there.
	index := regs[len(regs)-2]
	b[index.from+20] ^= 1
	writeFile(t, fs, "t", b)
	if rep, err = Verify(fs, "t", VerifyOptions{}); err != nil || len(rep.Problems) != 3 || !rep.problemIn(index.from, index.from+1) {
		t.Fatalf("damaged index without a footer: %v, problems %v", err, rep.Problems)
	}
}

// TestVerifyHandsOverBlocks: with VerifyOptions.Block, Verify hands over
// every intact block in file order, each one the callee may keep (the
// entries of all of them, read after Verify returns, are the table's), and
// never a damaged one; the damage is still reported. A cluster member
// loads a received snapshot from these blocks instead of decoding it again.
func TestVerifyHandsOverBlocks(t *testing.T) {
	fs := vfs.NewMem()
	entries := genEntries(rand.New(rand.NewPCG(12, 12)), 400, 8, 40, 0.1)
	for _, codec := range []format.BlockCodec{format.CodecNone, format.CodecZstd} {
		writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 500, Codec: codec})
		var kept []*format.Block
		keep := func(b *format.Block) error { kept = append(kept, b); return nil }
		rep, err := Verify(fs, "t", VerifyOptions{Block: keep})
		if err != nil || !rep.OK() {
			t.Fatalf("codec %d: %v %v", codec, err, rep.Err())
		}
		var got []entry
		for _, b := range kept {
			for i := range b.Len() {
				k, v, kind := b.Entry(i)
				got = append(got, entry{key: append([]byte(nil), k...), value: append([]byte(nil), v...), kind: kind})
			}
		}
		if len(kept) != rep.Blocks || !equalEntries(got, entries) {
			t.Fatalf("codec %d: %d blocks handed over of %d, holding %d entries of %d, or not the table's", codec, len(kept), rep.Blocks, len(got), len(entries))
		}
	}

	b := readFile(t, fs, "t")
	regs := regionsOf(t, b)
	bad := regs[3]
	b[bad.from+20] ^= 0x40
	writeFile(t, fs, "t", b)
	var offs int
	rep, err := Verify(fs, "t", VerifyOptions{Block: func(*format.Block) error { offs++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.problemIn(bad.from, bad.from+1) || offs != rep.Blocks || rep.BadBlocks != 1 {
		t.Fatalf("damaged block at %d: problems %v, %d handed over, %d good and %d bad blocks", bad.from, rep.Problems, offs, rep.Blocks, rep.BadBlocks)
	}

	stop := errors.New("enough")
	if _, err := Verify(fs, "t", VerifyOptions{Block: func(*format.Block) error { return stop }}); !errors.Is(err, stop) {
		t.Fatalf("Verify with a Block that fails: %v, want its error", err)
	}
}
