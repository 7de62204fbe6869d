package segment

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// TestEnqueueBatch: records enqueued together get consecutive indexes,
// become durable together (one Pending for all), are read back in order
// across rotations, and a batch that is too large assigns no index. Each
// batch is enqueued on an idle log and waited for before the next, so the
// flusher must be woken by the batch itself.
func TestEnqueueBatch(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 4096))
	defer l.Close()
	next := uint64(1)
	for round := range 60 {
		n := round%7 + 1
		var data [][]byte
		for i := range n {
			data = append(data, payload(next+uint64(i)))
		}
		first, p, err := l.EnqueueBatch(format.FrameWALTxn, data)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if first != next || p.Index() != next+uint64(n)-1 {
			t.Fatalf("round %d: indexes %d..%d, want %d..%d", round, first, p.Index(), next, next+uint64(n)-1)
		}
		waitFor(t, "the batch to become durable", func() bool {
			select {
			case <-p.Done():
				return true
			default:
				return false
			}
		})
		if err := p.Wait(); err != nil || l.DurableIndex() < p.Index() {
			t.Fatalf("round %d: %v, durable through %d", round, err, l.DurableIndex())
		}
		next += uint64(n)
	}
	big := [][]byte{make([]byte, l.MaxBatchBytes()/2), make([]byte, l.MaxBatchBytes()/2)}
	if _, _, err := l.EnqueueBatch(format.FrameWALTxn, big); !errors.Is(err, ErrTooLarge) || l.LastIndex() != next-1 {
		t.Fatalf("a batch over MaxBatchBytes: %v, last index %d; want ErrTooLarge and no index assigned", err, l.LastIndex())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	es, err := readAll(fs, testDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(es)) != next-1 {
		t.Fatalf("read %d entries, want %d", len(es), next-1)
	}
	for k, e := range es {
		if i := uint64(k) + 1; e.Index != i || e.Type != format.FrameWALTxn || !bytes.Equal(e.Data, payload(i)) {
			t.Fatalf("entry %d: index %d type %d, %d bytes; want index %d, payload(%d)", k, e.Index, e.Type, len(e.Data), i, i)
		}
	}
}
