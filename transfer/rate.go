package transfer

import (
	"context"
	"time"
)

// bucket is a token bucket limiting a sender to rate bytes per second. It
// lets its balance go negative and then sleeps the debt off, so a chunk
// larger than a second's allowance still goes out, and the long-run rate
// is exact. A nil bucket does not limit.
type bucket struct {
	rate   float64 // bytes per second
	burst  float64 // most tokens saved up while idle
	tokens float64
	last   time.Time
}

func newBucket(rate int64) *bucket {
	if rate <= 0 {
		return nil
	}
	r := float64(rate)
	return &bucket{rate: r, burst: max(r/10, 64<<10), last: time.Now()}
}

// wait takes n bytes' worth of tokens, sleeping as long as the balance is
// negative.
func (b *bucket) wait(ctx context.Context, n int) error {
	if b == nil {
		return nil
	}
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(-b.tokens / b.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
