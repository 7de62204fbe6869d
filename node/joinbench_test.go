package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/node"
)

// BenchmarkClusterJoin measures a join (issue 12 "Speed"): a three-member
// cluster run by node.Run in this process is loaded with
// KVTOOL_JOIN_BENCH_KEYS keys (default 20000); then 16 clients put for one
// second without a join, and again while a fourth member joins with
// --join-cluster and catches up by the log. It reports the puts/s of both,
// their ratio, and the time from the join's start to its cutover and to
// its promotion.
//
//	go test ./node -run '^$' -bench ClusterJoin -benchtime 1x
func BenchmarkClusterJoin(b *testing.B) {
	keys := 20000
	if s := os.Getenv("KVTOOL_JOIN_BENCH_KEYS"); s != "" {
		keys, _ = strconv.Atoi(s)
	}
	for range b.N {
		addrs := startCluster(b)
		cs := make([]*client.Client, len(addrs))
		for i, a := range addrs {
			cs[i] = client.New(a)
			defer cs[i].Close()
		}
		putsFor(b, cs, 64, keys, 0, "load")
		base := putsFor(b, cs, 16, 0, time.Second, "base")
		joined, cutover := make(chan struct{}), make(chan time.Time, 1)
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			peer := freePeerAddrs(b, 1)[0]
			done <- node.Run(ctx, node.Config{Dir: filepath.Join(b.TempDir(), "n4"), Listen: "127.0.0.1:0",
				Cluster: &node.ClusterConfig{Name: "n4", PeerListen: peer, JoinCluster: addrs[0], Secret: []byte("a shared secret of the members")},
				Events:  node.Events{Listening: func(node.Listening) error { close(joined); return nil }, CutOver: func() { cutover <- time.Now() }}})
		}()
		<-joined
		during := putsFor(b, cs, 16, 0, time.Second, "during the join")
		var cut time.Time
		select {
		case cut = <-cutover:
		case err := <-done:
			b.Fatal(err)
		}
		promoted := waitPromoted(b, cs[0], "n4")
		b.ReportMetric(base, "puts/s-no-join")
		b.ReportMetric(during, "puts/s-join")
		b.ReportMetric(during/base, "join-ratio")
		b.ReportMetric(cut.Sub(start).Seconds(), "s-to-cutover")
		b.ReportMetric(promoted.Sub(start).Seconds(), "s-to-promotion")
		cancel()
		<-done
	}
}

// putsFor puts n keys (or, with n 0, for d) from clients goroutines over
// cs and returns the puts per second.
func putsFor(b *testing.B, cs []*client.Client, clients, n int, d time.Duration, what string) float64 {
	var next, okc atomic.Int64
	end := time.Now().Add(d)
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			c, val := cs[w%len(cs)], make([]byte, 100)
			for {
				i := next.Add(1)
				if n > 0 && i > int64(n) || n == 0 && time.Now().After(end) {
					return
				}
				if _, err := c.Put(context.Background(), fmt.Sprintf("%s/%d", what, i), val); err != nil {
					b.Error(err)
					return
				}
				okc.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(okc.Load()) / time.Since(t0).Seconds()
}

// waitPromoted waits until c's cluster view shows member name as a voter.
func waitPromoted(b *testing.B, c *client.Client, name string) time.Time {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := c.ClusterStatus(context.Background())
		if err == nil {
			for _, m := range st.Members {
				if m.Name == name && m.Role != "learner" {
					return time.Now()
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("%s was not promoted", name)
	return time.Time{}
}
