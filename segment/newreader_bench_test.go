package segment

import (
	"io"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// BenchmarkNewReaderMidSegment opens a reader of an open log at an index
// in the middle of its 64 MiB segment (16 MiB of 1 KiB records before it)
// and reads one entry: what a transfer's tail or a lagging raft follower's
// read costs before its first entry. In memory, so it measures the CPU.
func BenchmarkNewReaderMidSegment(b *testing.B) {
	l, err := Open(Options{FS: vfs.NewMem(), Dir: "/wal", SegmentSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rec := make([]byte, 1000)
	var ps []*Pending
	for i := 0; i < 32<<10; i++ {
		p, err := l.Enqueue(format.FrameWALTxn, rec)
		if err != nil {
			b.Fatal(err)
		}
		if ps = append(ps, p); len(ps) == 64 {
			for _, p := range ps {
				if err := p.Wait(); err != nil {
					b.Fatal(err)
				}
			}
			ps = ps[:0]
		}
	}
	for _, p := range ps {
		if err := p.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	from := l.LastIndex() / 2
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := l.NewReader(from)
		if err != nil {
			b.Fatal(err)
		}
		if e, err := r.Next(); err != nil && err != io.EOF || e.Index != from {
			b.Fatalf("entry %d (%v), want %d", e.Index, err, from)
		}
		r.Close()
	}
}
