package store

import (
	"context"
	"errors"
	"time"

	"github.com/kvtool/kvtool/segment"
)

// ObserveWAL sets f to be called after every group commit with what it
// cost (metrics). f runs on the WAL's flusher goroutine and must be quick.
func (s *Store) ObserveWAL(f func(segment.SyncStats)) { s.walObserver.Store(&f) }

func (s *Store) onSync(st segment.SyncStats) {
	if f := s.walObserver.Load(); f != nil {
		(*f)(st)
	}
}

// MaintenancePolicy says when RunMaintenance acts. A zero field turns its
// rule off.
type MaintenancePolicy struct {
	// DeltaEvery takes a delta this often when something changed.
	DeltaEvery time.Duration
	// MergeAfterDeltas merges once the chain has this many deltas.
	MergeAfterDeltas int
	// MergeAfterBytes merges once the deltas add up to this many bytes.
	MergeAfterBytes int64
	// CompactWALBytes compacts once the retained WAL passes this size.
	CompactWALBytes int64
	// Tick is how often the rules are checked (default 1s).
	Tick time.Duration
	// Running, if set, is called with the kind of each step ("delta",
	// "merge", "compact") before it runs, and with "" once it ended, so
	// that a caller stopping maintenance can say what it waits for.
	Running func(kind string)
}

// MaintenanceEvent reports one maintenance step RunMaintenance took.
type MaintenanceEvent struct {
	Kind     string // "delta", "merge" or "compact"
	Duration time.Duration
	Index    uint64 // index of the file written
	Err      error
}

// RunMaintenance applies the policy until ctx is done, calling report after
// every step it takes (report may be nil). Steps run one at a time, beside
// readers and writers; an error is reported and retried at the next rule
// check, never fatal. Once ctx is done, the step in progress stops at its
// next safe point (between two blocks of the file it writes, which is then
// abandoned; the manifest is untouched), is not reported, and
// RunMaintenance returns.
func (s *Store) RunMaintenance(ctx context.Context, p MaintenancePolicy, report func(MaintenanceEvent)) {
	tick := p.Tick
	if tick <= 0 {
		tick = time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	lastDelta := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ev, ok := s.maintenanceStep(ctx, p, &lastDelta)
		if ctx.Err() != nil && errors.Is(ev.Err, ctx.Err()) {
			// Shutdown cut the step short at a safe point (its temp file
			// removed, nothing published): not a failure to report.
			return
		}
		if ok && report != nil && !errors.Is(ev.Err, ErrNothingToDo) {
			report(ev)
		}
	}
}

// maintenanceStep takes at most one step: compaction first (it bounds disk
// and restart time), then a merge, then a delta.
func (s *Store) maintenanceStep(ctx context.Context, p MaintenancePolicy, lastDelta *time.Time) (MaintenanceEvent, bool) {
	start := time.Now()
	running := func(kind string) {
		if p.Running != nil {
			p.Running(kind)
		}
	}
	done := func(kind string, idx uint64, err error) (MaintenanceEvent, bool) {
		running("")
		return MaintenanceEvent{Kind: kind, Duration: time.Since(start), Index: idx, Err: err}, true
	}
	m := s.CurrentManifest()
	switch {
	case p.CompactWALBytes > 0 && s.walBytes() >= p.CompactWALBytes:
		running("compact")
		res, err := s.Compact(ctx)
		return done("compact", res.Checkpoint.Meta.Index, err)
	case p.MergeAfterDeltas > 0 && len(m.Deltas) >= p.MergeAfterDeltas,
		p.MergeAfterBytes > 0 && deltaBytes(&m) >= p.MergeAfterBytes:
		running("merge")
		info, err := s.Merge(ctx)
		return done("merge", info.Meta.Index, err)
	case p.DeltaEvery > 0 && time.Since(*lastDelta) >= p.DeltaEvery:
		*lastDelta = time.Now()
		running("delta")
		info, err := s.Delta(ctx)
		return done("delta", info.Meta.To, err)
	}
	return MaintenanceEvent{}, false
}

// walBytes is the data in the WAL's segments.
func (s *Store) walBytes() int64 {
	n := int64(0)
	for _, seg := range s.log.Segments() {
		n += seg.Size
	}
	return n
}
