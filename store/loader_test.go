package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
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
