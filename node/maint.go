package node

import (
	"context"
	"log/slog"
	"sync"

	"github.com/kvtool/kvtool/store"
)

// runMaintenance runs the store's automatic deltas, merges and compaction
// until ctx ends: the step in progress, if any, then stops at its next
// safe point (between two blocks of the file it writes, which is then
// removed; the manifest is untouched), and runMaintenance returns once it
// has, saying what it waits for, so the store is closed only after.
func runMaintenance(ctx context.Context, st *store.Store, p store.MaintenancePolicy, report func(store.MaintenanceEvent), log *slog.Logger) {
	var (
		mu     sync.Mutex
		step   string // the step running, "" between steps
		waited bool   // "waiting for" was logged
	)
	waiting := func() { // with mu held
		if step != "" && !waited {
			log.Info("waiting for maintenance to stop at a safe point", "kind", step)
			waited = true
		}
	}
	p.Running = func(kind string) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case kind != "":
			log.Debug("maintenance started", "kind", kind)
		case ctx.Err() != nil:
			waiting() // the step may notice the end before AfterFunc runs
			log.Info("maintenance stopped at a safe point", "kind", step)
		}
		step = kind
	}
	stopping := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		waiting()
	})
	defer stopping()
	st.RunMaintenance(ctx, p, report)
}
