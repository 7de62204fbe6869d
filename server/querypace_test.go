package server

import (
	"testing"
	"time"
)

// A query rests only after a whole slice during which the store applied
// writes, for queryRest times what it ran, and queryMaxRest in all; on an
// idle store, or within a slice, it never sleeps.
func TestQueryPacer(t *testing.T) {
	var index uint64 = 10
	clock := time.Unix(0, 0)
	var slept []time.Duration
	p := newQueryPacer(func() uint64 { return index })
	p.start, p.now = clock, func() time.Time { return clock }
	p.sleep = func(d time.Duration) { slept = append(slept, d); clock = clock.Add(d) }
	step := func(d time.Duration) { clock = clock.Add(d); p.yield() }

	step(querySlice / 2) // within the slice, writes or not
	index++
	step(querySlice / 4)
	if len(slept) != 0 {
		t.Fatalf("rested within a slice: %v", slept)
	}
	step(querySlice / 2) // the slice ends: the store moved on
	if want := queryRest * (querySlice + querySlice/4); len(slept) != 1 || slept[0] != want {
		t.Fatalf("after a slice with writes: slept %v; want [%v]", slept, want)
	}
	for range 10 { // idle store: full speed
		step(querySlice)
	}
	if len(slept) != 1 {
		t.Fatalf("rested on an idle store: %v", slept)
	}
	index++
	step(2 * querySlice) // a slice that ran long rests in proportion
	if want := queryRest * 2 * querySlice; len(slept) != 2 || slept[1] != want {
		t.Fatalf("after a long slice with writes: slept %v; want %v last", slept, want)
	}
	// The rest does not count as the next slice's running time.
	index++
	step(querySlice / 2)
	if len(slept) != 2 {
		t.Fatalf("rested again half a slice after a rest: %v", slept)
	}

	// Writes that never stop: the query rests queryMaxRest in all, then
	// runs at full speed.
	for range 2 * int(queryMaxRest/(queryRest*querySlice)) {
		index++
		step(querySlice)
	}
	var total time.Duration
	for _, d := range slept {
		total += d
	}
	if total != queryMaxRest {
		t.Fatalf("rested %v in all under endless writes; want %v", total, queryMaxRest)
	}
}
