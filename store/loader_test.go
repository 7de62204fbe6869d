package store

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// TestOpenDamagedCheckpointBlock damages one block in the middle of the
// base checkpoint: opening must fail with the corruption, naming the
// checkpoint file and the damaged block's offset, whichever block the
// parallel decoders reach first.
func TestOpenDamagedCheckpointBlock(t *testing.T) {
	ctx := context.Background()
	m := vfs.NewMem()
	s, err := Open(Options{FS: m, Dir: "/data", Create: true, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	txn := &Txn{}
	for i := 0; i < 5000; i++ {
		txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: fmt.Sprintf("key%06d", i), Value: []byte(fmt.Sprintf("value %d of the state, long enough to fill blocks", i))})
	}
	if _, err := s.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	info, err := s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if info.Blocks < 4 {
		t.Fatalf("checkpoint has %d blocks; the test needs several", info.Blocks)
	}
	// Walk the block frames to find the middle block's offset.
	r, err := checkpoint.Open(m, info.Path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	off := int64(format.HeaderSize(len(r.Reader.Info().Ext)))
	for b := 0; b < info.Blocks; b++ {
		offs = append(offs, off)
		var hdr [format.FrameHeaderSize]byte
		f, _ := m.Open(info.Path)
		f.ReadAt(hdr[:], off)
		h, err := format.ParseFrameHeader(hdr[:], info.Path, off, info.Size-off)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		off += format.FrameHeaderSize + int64(h.Length)
	}
	r.Close()
	bad := offs[len(offs)/2]
	flipByte(t, m, info.Path, bad+format.FrameHeaderSize+20)

	_, err = Open(Options{FS: m, Dir: "/data"})
	ce := format.AsCorruption(err)
	if ce == nil || ce.Path != info.Path || ce.Offset != bad {
		t.Fatalf("open with block %d of %s damaged: %v; want a corruption naming %s at offset %d", len(offs)/2, filepath.Base(info.Path), err, info.Path, bad)
	}
}

func flipByte(t *testing.T, fs vfs.FS, path string, at int64) {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := f.Size()
	b := make([]byte, size)
	f.ReadAt(b, 0)
	f.Close()
	b[at] ^= 0x40
	w, err := fs.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Sync()
	w.Close()
}

// TestUnorderedCheckpointRefused: the shard trees are built from a
// checkpoint's pairs without comparing them (bulkLoad), trusting the
// table layer's order checks. A checkpoint whose keys are out of order
// inside a block, with every checksum right (a writer's bug, or a
// forged file), must be refused with a corruption naming the file and
// the block's offset, both when a store loads it (LoadBase) and when a
// member verifies a received one and keeps its blocks (BaseBlocks).
func TestUnorderedCheckpointRefused(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/snap", 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	info, err := checkpoint.Write(fs, "/snap", checkpoint.Meta{Index: 7, Term: 1, Shards: 4},
		checkpoint.SourceFunc(func(fn func(string, []byte) bool) {
			for i := range n {
				if !fn(fmt.Sprintf("key/%06d", i), []byte(fmt.Sprintf("value %d, long enough to fill several blocks", i))) {
					return
				}
			}
		}), checkpoint.Options{Uncompressed: true, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if info.Blocks < 4 {
		t.Fatalf("checkpoint has %d blocks; the test needs several", info.Blocks)
	}
	b := readAllFile(t, fs, info.Path)
	// A key in the middle of a middle block becomes one that sorts after
	// its successor; the block's frame is sealed again.
	at := bytes.Index(b, []byte(fmt.Sprintf("key/%06d", n/2)))
	if at < 0 {
		t.Fatal("key not found in the uncompressed checkpoint")
	}
	copy(b[at:], fmt.Sprintf("key/%06d", n+1))
	r, err := checkpoint.Open(fs, info.Path)
	if err != nil {
		t.Fatal(err)
	}
	var blockOff int64 = -1
	off := int64(format.HeaderSize(len(r.Reader.Info().Ext)))
	r.Close()
	for blockOff < 0 {
		h, err := format.ParseFrameHeader(b[off:], info.Path, off, -1)
		if err != nil {
			t.Fatal(err)
		}
		end := off + format.FrameHeaderSize + int64(h.Length)
		if int64(at) < end {
			format.FinishFrame(b[off:end], 0)
			blockOff = off
		}
		off = end
	}
	writeAllFile(t, fs, info.Path, b)

	r, err = checkpoint.Open(fs, info.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = newLoader(4).LoadBase(r)
	if ce := format.AsCorruption(err); ce == nil || ce.Path != info.Path || ce.Offset != blockOff {
		t.Fatalf("LoadBase of a checkpoint with keys out of order in the block at %d: %v; want a corruption naming %s at offset %d", blockOff, err, info.Path, blockOff)
	}

	bb := NewBaseBlocks(info)
	rep, err := checkpoint.Verify(fs, info.Path, table.VerifyOptions{Block: bb.Add})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Problems {
		found = found || p.Offset == blockOff
	}
	if rep.OK() || !found {
		t.Fatalf("verify of a checkpoint with keys out of order in the block at %d: %v; want a problem at that offset", blockOff, rep.Err())
	}
}

// TestReopenLongKeys: a store reopened from a checkpoint and a WAL tail
// that puts, overwrites and deletes the same keys many times holds exactly
// the state it had, with keys that share their first 8 bytes, their first
// 16, or are shorter than 8 (the load sorts the tail's effects by two
// 8-byte abbreviations before the keys, and builds the trees without
// comparing).
func TestReopenLongKeys(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	s, err := Open(Options{FS: fs, Dir: "/d", Create: true, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	key := func() string {
		switch n := rng.IntN(300); {
		case n < 100:
			return fmt.Sprintf("user/0000000000/%03d", n) // 16 bytes shared
		case n < 200:
			return fmt.Sprintf("user/00%03d", n) // 8 shared
		default:
			return fmt.Sprintf("k%d", n%37) // shorter than 8
		}
	}
	model := map[string]string{}
	step := func(n int) {
		for range n {
			txn := &Txn{}
			for range 1 + rng.IntN(4) {
				k := key()
				if rng.IntN(4) == 0 {
					txn.Ops = append(txn.Ops, Op{Kind: OpDelete, Key: k})
					delete(model, k)
				} else {
					v := fmt.Sprint(rng.Uint32())
					txn.Ops = append(txn.Ops, Op{Kind: OpPut, Key: k, Value: []byte(v)})
					model[k] = v
				}
			}
			if _, err := s.Commit(ctx, txn); err != nil {
				t.Fatal(err)
			}
		}
	}
	step(400)
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	step(400) // the tail: every key many times over
	want := s.Snapshot().Hash()
	s.Close()
	s, err = Open(Options{FS: fs, Dir: "/d"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap := s.Snapshot()
	var got []string
	snap.Scan(ScanOptions{}, func(k string, v []byte) bool {
		got = append(got, k)
		if model[k] != string(v) {
			t.Errorf("%q = %q, want %q", k, v, model[k])
		}
		return true
	})
	if !slices.IsSorted(got) || len(got) != len(model) {
		t.Fatalf("reopened store scans %d keys (sorted %v), want %d", len(got), slices.IsSorted(got), len(model))
	}
	for k, v := range model {
		if g, ok := snap.Get(k); !ok || string(g) != v {
			t.Fatalf("Get(%q) = %q %v, want %q", k, g, ok, v)
		}
	}
	if h := snap.Hash(); h != want {
		t.Fatalf("reopened hash %016x, want %016x", h, want)
	}
}
