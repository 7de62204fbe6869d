package drill

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/store"
)

// maintStep is one maintenance operation a drill runs beside its load, so
// that its fault can land in the middle of any of them.
type maintStep struct {
	name string
	f    func(context.Context) error
}

// serverSteps is the maintenance cycle over a server's admin API.
func serverSteps(c *client.Client) []maintStep {
	return []maintStep{
		{"rotate", func(ctx context.Context) error { _, err := c.Rotate(ctx); return err }},
		{"delta", func(ctx context.Context) error { _, err := c.Delta(ctx); return err }},
		{"delta", func(ctx context.Context) error { _, err := c.Delta(ctx); return err }},
		{"merge", func(ctx context.Context) error { _, err := c.Merge(ctx); return err }},
		{"checkpoint", func(ctx context.Context) error { _, err := c.Checkpoint(ctx); return err }},
		{"compact", func(ctx context.Context) error { _, err := c.Compact(ctx); return err }},
	}
}

// storeSteps is the same cycle on a store in this process.
func storeSteps(s *store.Store) []maintStep {
	return []maintStep{
		{"rotate", func(context.Context) error { return s.Rotate() }},
		{"delta", func(ctx context.Context) error { _, err := s.Delta(ctx); return err }},
		{"delta", func(ctx context.Context) error { _, err := s.Delta(ctx); return err }},
		{"merge", func(ctx context.Context) error { _, err := s.Merge(ctx); return err }},
		{"checkpoint", func(ctx context.Context) error { _, err := s.Checkpoint(ctx); return err }},
		{"compact", func(ctx context.Context) error { _, err := s.Compact(ctx); return err }},
	}
}

// maintain runs steps in turn, with a random pause of up to maxPause
// before each, until ctx is done; during, if set, is told the step running
// ("load" between steps). It returns how many of each completed.
func maintain(ctx context.Context, r *run, steps []maintStep, rng *rand.Rand, maxPause time.Duration, during func(string)) map[string]int {
	done := map[string]int{}
	for i := 0; ; i++ {
		sleep(ctx, maxPause/10+time.Duration(rng.Int64N(int64(maxPause))))
		if ctx.Err() != nil {
			return done
		}
		s := steps[i%len(steps)]
		if during != nil {
			during(s.name)
		}
		err := s.f(ctx)
		if during != nil {
			during("load")
		}
		switch {
		case err == nil:
			done[s.name]++
		case ctx.Err() == nil && !nothingToDo(err):
			r.logf("maintenance %s: %v", s.name, err)
		}
	}
}

// nothingToDo reports a maintenance step that found nothing to do.
func nothingToDo(err error) bool {
	var ce *client.Error
	return errors.Is(err, store.ErrNothingToDo) || (errors.As(err, &ce) && strings.Contains(ce.Message, "nothing to do"))
}

// maintText describes what maintenance completed.
func maintText(done map[string]int) string {
	var parts []string
	for _, name := range []string{"rotate", "delta", "merge", "checkpoint", "compact"} {
		parts = append(parts, fmt.Sprintf("%d %s", done[name], name))
	}
	return strings.Join(parts, ", ")
}
