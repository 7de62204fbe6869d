package table

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// blocksEntries collects what Blocks delivers, in delivery order, without
// copying: the blocks are the caller's to keep.
func blocksEntries(r *Reader, workers int) ([]entry, int, error) {
	var out []entry
	n := 0
	err := r.Blocks(workers, func(b *format.Block) error {
		n++
		for j := 0; j < b.Len(); j++ {
			k, v, kind := b.Entry(j)
			out = append(out, entry{k, v, kind})
		}
		return nil
	})
	return out, n, err
}

var blocksWorkers = []int{0, 1, 2, 3, 8}

func TestBlocksEqualsSerial(t *testing.T) {
	entries := genEntries(rand.New(rand.NewPCG(3, 4)), 3000, 12, 200, 0.2)
	for _, codec := range []format.BlockCodec{format.CodecNone, format.CodecZstd, format.CodecHuff0} {
		fs := vfs.NewMem()
		info := writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 2000, Codec: codec, Index: 5, Term: 1})
		if info.Blocks < 20 {
			t.Fatalf("only %d blocks: the test needs many", info.Blocks)
		}
		r := mustOpen(t, fs, "t")
		for _, w := range blocksWorkers {
			t.Run(fmt.Sprintf("codec=%d/workers=%d", codec, w), func(t *testing.T) {
				got, n, err := blocksEntries(r, w)
				if err != nil {
					t.Fatal(err)
				}
				if n != info.Blocks || !equalEntries(got, entries) {
					t.Fatalf("Blocks delivered %d blocks and %d entries; the file has %d blocks and %d entries (or they differ)", n, len(got), info.Blocks, len(entries))
				}
			})
		}
	}
}

func TestBlocksEmptyTable(t *testing.T) {
	fs := vfs.NewMem()
	writeTable(t, fs, "t", nil, WriterOptions{})
	got, n, err := blocksEntries(mustOpen(t, fs, "t"), 0)
	if err != nil || n != 0 || len(got) != 0 {
		t.Fatalf("empty table: %d blocks, %d entries, %v", n, len(got), err)
	}
}

// TestBlocksDamaged damages each block of a table in turn and checks that
// Blocks fails exactly as a serial read does: the same corruption, naming
// the file and the damaged block's offset, after delivering exactly the
// blocks before it.
func TestBlocksDamaged(t *testing.T) {
	entries := genEntries(rand.New(rand.NewPCG(5, 6)), 600, 10, 100, 0.1)
	for _, codec := range []format.BlockCodec{format.CodecNone, format.CodecZstd, format.CodecHuff0} {
		fs := vfs.NewMem()
		writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 1500, Codec: codec, Index: 5, Term: 1})
		good := readFile(t, fs, "t")
		for _, reg := range regionsOf(t, good) {
			if reg.name != fmt.Sprintf("frame type %d", format.FrameBlock) {
				continue
			}
			for name, corrupt := range corruptions {
				for _, p := range []int64{reg.from + 3, reg.from + format.FrameHeaderSize + 1, (reg.from + reg.to) / 2, reg.to - 1} {
					bad := bytes.Clone(good)
					corrupt(bad, int(p))
					writeFile(t, fs, "bad", bad)
					r, err := Open(fs, "bad")
					if err != nil {
						t.Fatalf("%s at %d: open: %v (only a block is damaged)", name, p, err)
					}
					want, wantErr := readAll(r.NewIter(nil, nil))
					wce := format.AsCorruption(wantErr)
					if wce == nil || wce.Offset != reg.from || wce.Path != "bad" {
						t.Fatalf("codec %d, %s at %d: serial read says %v, want corruption of bad at %d", codec, name, p, wantErr, reg.from)
					}
					for _, w := range blocksWorkers {
						got, _, err := blocksEntries(r, w)
						ce := format.AsCorruption(err)
						if ce == nil || ce.Path != wce.Path || ce.Offset != wce.Offset || ce.Reason != wce.Reason {
							t.Fatalf("codec %d, %s at %d, workers %d: Blocks says %v, the serial read %v", codec, name, p, w, err, wantErr)
						}
						if !equalEntries(got, want) {
							t.Fatalf("codec %d, %s at %d, workers %d: Blocks delivered %d entries before the damage, the serial read %d", codec, name, p, w, len(got), len(want))
						}
					}
					r.Close()
				}
			}
		}
	}
}

// TestBlocksIndexMismatch checks that a block that disagrees with its
// index entry fails Blocks as it fails a serial read.
func TestBlocksIndexMismatch(t *testing.T) {
	entries := genEntries(rand.New(rand.NewPCG(1, 2)), 500, 10, 100, 0)
	fs := vfs.NewMem()
	info := writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 1000, Codec: format.CodecZstd, Index: 5, Term: 1})
	for _, field := range []string{"count", "first"} {
		r := mustOpen(t, fs, "t")
		e := &r.index[info.Blocks/2]
		if field == "count" {
			e.count++
		} else {
			e.first = append(bytes.Clone(e.first), 0)
		}
		_, wantErr := readAll(r.NewIter(nil, nil))
		for _, w := range blocksWorkers {
			_, _, err := blocksEntries(r, w)
			ce, wce := format.AsCorruption(err), format.AsCorruption(wantErr)
			if ce == nil || wce == nil || *ce != *wce || ce.Offset != e.off {
				t.Fatalf("index %s disagrees, workers %d: Blocks says %v, the serial read %v", field, w, err, wantErr)
			}
		}
	}
}

// TestMapBlocksStops checks that an error from either function ends the
// walk at that block, that it is returned, and that no goroutine is left
// behind.
func TestMapBlocksStops(t *testing.T) {
	entries := genEntries(rand.New(rand.NewPCG(7, 8)), 2000, 10, 100, 0)
	fs := vfs.NewMem()
	info := writeTable(t, fs, "t", entries, WriterOptions{BlockSize: 1000, Codec: format.CodecZstd, Index: 5, Term: 1})
	r := mustOpen(t, fs, "t")
	before := runtime.NumGoroutine()
	errStop := errors.New("stop here")
	stopAt := info.Blocks / 2
	for _, inMap := range []bool{false, true} {
		for _, w := range blocksWorkers {
			var seen []int
			first := func(b *format.Block) (string, error) {
				k := string(b.Key(0))
				if inMap && k == string(blockFirstKey(r, stopAt)) {
					return "", errStop
				}
				return k, nil
			}
			err := MapBlocks(r, w, first, func(k string) error {
				seen = append(seen, len(seen))
				if k != string(blockFirstKey(r, len(seen)-1)) {
					return fmt.Errorf("block %d delivered out of order", len(seen)-1)
				}
				if !inMap && len(seen)-1 == stopAt {
					return errStop
				}
				return nil
			})
			want := stopAt
			if !inMap {
				want++ // fn saw the block it stopped at
			}
			if !errors.Is(err, errStop) || len(seen) != want {
				t.Fatalf("stop in map=%v, workers %d: err %v after %d blocks, want %v after %d", inMap, w, err, len(seen), errStop, want)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines before the walks, %d after", before, runtime.NumGoroutine())
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func blockFirstKey(r *Reader, i int) []byte { return r.index[i].first }
