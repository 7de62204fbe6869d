package segment

import (
	"bytes"
	"sync"
)

// plantedBatches holds, per log, the batch testfault.WALAckBeforeWrite
// acknowledged last and has not written yet, with its bytes. Only that
// planted bug uses it; it lives here, not in Log, to keep the bug out of
// the log's own code.
var plantedBatches sync.Map // *Log -> *plantedBatch

type plantedBatch struct {
	b    *batch
	data []byte
}

// ackBeforeWrite is the bug testfault.WALAckBeforeWrite plants, for tests
// that must show they catch lost acknowledged commits. It acknowledges
// batch b as flush would after its fsync — durable index, OnDurable,
// waiters released — but keeps it in memory, and returns the batch it
// acknowledged the round before (a stand-in nobody waits on) for flush to
// write, sync and acknowledge again, which changes nothing; nil if there is
// none. So the newest acknowledged batch is never on disk: a crash or a
// SIGKILL at any moment loses it.
func (l *Log) ackBeforeWrite(b *batch, data []byte) (*batch, []byte) {
	if b.n > 0 {
		l.durable.Store(b.last)
		if l.onDurable != nil {
			l.onDurable(b.last)
		}
	}
	close(b.done)
	stand := &plantedBatch{b: &batch{done: make(chan struct{}), last: b.last, n: b.n, rotate: b.rotate}, data: bytes.Clone(data)}
	prev, ok := plantedBatches.Swap(l, stand)
	if !ok {
		return nil, nil
	}
	p := prev.(*plantedBatch)
	return p.b, p.data
}
