package segment

import (
	"time"

	"github.com/kvtool/kvtool/internal/testfault"
)

// ackBeforeWrite is the bug testfault.WALAckBeforeWrite plants, for tests
// that must show they catch lost acknowledged commits: it acknowledges
// batch b as flush would after its fsync — durable index, OnDurable,
// waiters released — then waits testfault.WALWriteDelay, and returns a
// stand-in for b (same records, nobody waiting on it) for flush to write,
// sync and acknowledge a second time, which changes nothing.
func (l *Log) ackBeforeWrite(b *batch) *batch {
	if b.n > 0 {
		l.durable.Store(b.last)
		if l.onDurable != nil {
			l.onDurable(b.last)
		}
	}
	close(b.done)
	time.Sleep(testfault.WALWriteDelay)
	return &batch{done: make(chan struct{}), last: b.last, n: b.n, rotate: b.rotate}
}
