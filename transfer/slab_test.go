package transfer

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/kvtool/kvtool/internal/xfertest"
	"github.com/kvtool/kvtool/segment"
)

// TestSlabClone: copies are equal to what was copied, stay so while more
// are made (across blocks, and when a copy is appended to), and nil stays
// nil.
func TestSlabClone(t *testing.T) {
	var s slab
	var srcs, copies [][]byte
	for i := range 2000 {
		b := bytes.Repeat([]byte{byte(i)}, i%(slabMax+50)) // some past slabMax: an allocation of their own
		c := s.clone(b)
		if cap(c) != len(c) {
			t.Fatalf("copy %d: capacity %d, length %d: an append to it would write into the next copy", i, cap(c), len(c))
		}
		_ = append(c, 0xff) // must not touch the next copy
		srcs, copies = append(srcs, b), append(copies, c)
	}
	for i := range copies {
		if !bytes.Equal(copies[i], srcs[i]) {
			t.Fatalf("copy %d changed: % x..., want % x...", i, copies[i][:min(8, len(copies[i]))], srcs[i][:min(8, len(srcs[i]))])
		}
	}
	if c := s.clone(nil); c != nil {
		t.Fatalf("clone(nil) = %v, want nil", c)
	}
	if c := s.clone([]byte{}); c == nil || len(c) != 0 {
		t.Fatalf("clone of an empty slice = %#v, want an empty non-nil slice", c)
	}
}

// TestTailQueueBackpressure: a full queue holds its reader until an entry
// is taken, and lets it go then, every time.
func TestTailQueueBackpressure(t *testing.T) {
	q := newTailQueue(100)
	var pushed atomic.Int64
	done := make(chan error, 1)
	go func() {
		for i := range 50 {
			if err := q.push(context.Background(), segment.Entry{Index: uint64(i + 1), Data: make([]byte, 60)}); err != nil {
				done <- err
				return
			}
			pushed.Add(1)
		}
		done <- nil
	}()
	for i := range 50 {
		xfertest.WaitFor(t, fmt.Sprintf("entry %d queued", i+1), func() bool {
			_, ok, _ := q.peek()
			return ok
		})
		e, _, _ := q.peek()
		if e.Index != uint64(i+1) {
			t.Fatalf("entry %d taken where %d was expected", e.Index, i+1)
		}
		if n := pushed.Load(); n > int64(i)+2 {
			t.Fatalf("%d entries pushed with %d taken: the queue of 100 bytes took more than two of 60", n, i)
		}
		q.pop()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
