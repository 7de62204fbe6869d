package server

import (
	"runtime"
	"time"
)

// Pacing of long queries. A query is CPU-bound and would keep a core for
// its whole run; writers need the cores only in short bursts (between
// fsyncs) but each burst waits when every core is busy, and on a small
// machine one query is half of them. So while writes are being applied,
// a query runs in slices and rests between them: it takes at most
// 1/(1+queryRest) of a core (an eighth), and a query on an idle store (or
// a short one) runs at full speed. A query rests queryMaxRest in all at
// most: writers that never stop (a store taking writes as fast as its
// cores allow) would otherwise hold a query at an eighth of its speed
// until its time limit, and a query over a table that grows with the
// writes (wal) might never finish. Past that it runs at full speed.
const (
	// querySlice is how long a query runs before it looks at whether the
	// store applied writes meanwhile.
	querySlice = 500 * time.Microsecond
	// queryRest is how many slices a query rests after a slice during
	// which writes were applied.
	queryRest = 7
	// queryMaxRest bounds how long a query rests in all.
	queryMaxRest = time.Second
)

// queryPacer is a query's query.Source.Yield: called every few dozen rows
// from the query's goroutine (not safe for concurrent use).
type queryPacer struct {
	index  func() uint64 // the store's applied index
	last   uint64        // index at the start of the slice
	start  time.Time     // when the slice started
	rested time.Duration // in all
	now    func() time.Time
	sleep  func(time.Duration)
}

func newQueryPacer(index func() uint64) *queryPacer {
	return &queryPacer{index: index, last: index(), start: time.Now(), now: time.Now, sleep: time.Sleep}
}

// yield ends the slice once it has run querySlice: it rests when the
// store applied writes during it (while the query has rest left), and in
// any case lets other goroutines run.
func (p *queryPacer) yield() {
	now := p.now()
	ran := now.Sub(p.start)
	if ran < querySlice {
		runtime.Gosched()
		return
	}
	if idx := p.index(); idx != p.last && p.rested < queryMaxRest {
		p.last = idx
		p.sleep(min(queryRest*ran, queryMaxRest-p.rested))
		after := p.now()
		p.rested += after.Sub(now) // what it slept, oversleeping included
		now = after
	} else {
		runtime.Gosched()
	}
	p.start = now
}
