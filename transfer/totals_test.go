package transfer

import (
	"sync"
	"testing"
)

// TestResumedTotalsAgree cuts a transfer halfway and resumes it: the two
// ends of the resumed session report the same totals, in their results
// and their last progress: the whole snapshot done, and as this session's
// share exactly what the receiver did not hold when it resumed, over
// which each computes its rate.
func TestResumedTotalsAgree(t *testing.T) {
	src := newMemSource(t, 3000, 5)
	id, err := src.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(src.snaps[id]))
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	first := transferOnce(t, src, sopts, ropts, nil, cutAfter(size/2))
	if first.recvErr == nil || first.recv.BytesDone == 0 || first.recv.BytesDone >= size {
		t.Fatalf("the cut session: %+v, %v", first.recv, first.recvErr)
	}
	if first.send.BytesDone > first.recv.BytesDone {
		t.Errorf("the sender counts %d bytes done, more than the receiver holds (%d)", first.send.BytesDone, first.recv.BytesDone)
	}

	var mu sync.Mutex
	var last [2]Progress // sender, receiver
	sopts.Progress = func(p Progress) { mu.Lock(); last[0] = p; mu.Unlock() }
	ropts.Progress = func(p Progress) { mu.Lock(); last[1] = p; mu.Unlock() }
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if o.sendErr != nil || o.recvErr != nil || !o.recv.Resumed {
		t.Fatalf("the resumed session: %v, %v, %+v", o.sendErr, o.recvErr, o.recv)
	}
	held := int64(o.recv.ResumeFrom) * testChunk
	if held == 0 || held > first.recv.BytesDone {
		t.Fatalf("resumed from byte %d; the cut session left %d", held, first.recv.BytesDone)
	}
	for _, c := range []struct {
		who                 string
		done, session, rate int64
	}{
		{"sender result", o.send.BytesDone, o.send.SessionBytes, o.send.Rate},
		{"receiver result", o.recv.BytesDone, o.recv.SessionBytes, o.recv.Rate},
		{"sender progress", last[0].BytesDone, last[0].SessionBytes, last[0].Rate},
		{"receiver progress", last[1].BytesDone, last[1].SessionBytes, last[1].Rate},
	} {
		if c.done != size || c.session != size-held || c.rate <= 0 {
			t.Errorf("%s: %d bytes done, %d this session at %d B/s; want %d, %d (the snapshot less the %d held)",
				c.who, c.done, c.session, c.rate, size, size-held, held)
		}
	}
}
