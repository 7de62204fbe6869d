package transfer

import (
	"bytes"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// TestReceiverWritesDuringChunkSync holds the first sync that follows the
// first chunk's write (the fsync of the first half-window of chunks) until
// the next chunk, which the credit already allows, is written to the part
// file: a receiver that stopped receiving while its chunks are synced
// (waiting for the disk instead of overlapping the two) never writes it,
// and the hold gives up after a generous deadline.
func TestReceiverWritesDuringChunkSync(t *testing.T) {
	src := newMemSource(t, 3000, 5)
	id, err := src.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	snap := src.snaps[id]
	next := int64(testWindow / 2) // the first chunk past the first flush
	if int64(len(snap)) < next+testChunk {
		t.Fatalf("snapshot of %d bytes: too small for the test", len(snap))
	}
	const dir = "/data"
	mem := vfs.NewMem()
	part := filepath.Join(dir, format.TransferDir, id.String(), format.XferPartName)
	written := func(off int64, want []byte) bool {
		f, err := mem.Open(part)
		if err != nil {
			return false
		}
		defer f.Close()
		got := make([]byte, len(want))
		_, err = f.ReadAt(got, off)
		return err == nil && bytes.Equal(got, want)
	}
	var held, overlapped atomic.Bool
	mem.SetSyncHook(func(int64) {
		if held.Load() || !written(0, snap[:64]) {
			return
		}
		held.Store(true)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if written(next, snap[next:next+64]) {
				overlapped.Store(true)
				return
			}
		}
	})
	sopts, ropts := smallOpts(dir)
	ropts.FS = mem
	if o := transferOnce(t, src, sopts, ropts, nil, nil); o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send %v, receive %v", o.sendErr, o.recvErr)
	}
	if !held.Load() {
		t.Fatal("no sync after the first chunk was written")
	}
	if !overlapped.Load() {
		t.Errorf("chunk at offset %d was not written while the first chunks were synced: the receiver waits for its fsyncs", next)
	}
}
