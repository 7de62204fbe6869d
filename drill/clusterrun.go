package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// runCluster is the cluster drills' script: start, elect, load, fault,
// time the recovery, restore the node, catch up, converge, check.
func runCluster(ctx context.Context, env *Env, fault clusterFault) Result {
	r := newRun(env)
	rng := rand.New(rand.NewPCG(env.Seed, 14))
	var c *testCluster
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	if err := r.step("start cluster", func() error {
		var err error
		c, err = startFreshCluster(ctx, env, rng)
		return err
	}); err != nil {
		return r.abort("%v", err)
	}
	var leader string
	if err := r.step("elect", func() error {
		var err error
		leader, err = c.leaderAmong(ctx, c.names, "")
		return err
	}); err != nil {
		return r.abort("%v", err)
	}
	bank := NewBank(serverAccounts, serverInitial, 0)
	if err := r.step("setup", func() error { return bank.Setup(ctx, ServerTarget{c.client(leader)}) }); err != nil {
		return r.abort("%v", err)
	}
	victim := leader
	if fault == faultKillFollower {
		f := without(c.names, leader)
		victim = f[rng.IntN(len(f))]
	}
	// The load goes to the survivors of a kill; a partitioned node keeps
	// taking writes, which must not be acknowledged without a quorum.
	targets := without(c.names, victim)
	if fault == faultPartitionLeader {
		targets = c.names
	}
	load := &clusterLoad{bank: bank, c: c}
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); load.run(lctx, targets, serverWorkers, rng.Uint64()) }()
	defer func() { stopLoad(); wg.Wait() }()
	phase := env.Duration / 3

	r.step("load", func() error {
		sleep(ctx, phase)
		if !waitFor(ctx, clusterTimeout, func() bool { return bank.Stats().Acked > 0 }) {
			return errors.New("no transfer acknowledged before the fault")
		}
		return nil
	})
	if bank.Stats().Acked == 0 {
		return r.abort("no transfer was acknowledged before the fault: the drill tested nothing (last error: %v)", bank.Stats().LastErr)
	}
	faultAt := time.Now()
	if fault == faultPartitionLeader {
		c.net.isolate(victim, false)
	} else {
		c.kill(victim)
	}
	load.fault(faultAt)
	what := map[clusterFault]string{faultKillFollower: "killed follower", faultKillLeader: "killed leader", faultPartitionLeader: "partitioned leader"}[fault]
	r.logf("%s %s (leader was %s), %d transfers acknowledged before", what, victim, leader, bank.Stats().Acked)

	timings := map[string]float64{}
	survivors := without(c.names, victim)
	var newLeader string
	err := r.step("new leader", func() error {
		var err error
		notName := ""
		if victim == leader {
			notName = victim
		}
		newLeader, err = c.leaderAmong(ctx, survivors, notName)
		return err
	})
	if err != nil {
		r.fail("after the %s %s: %v", what, victim, err)
		return finishCluster(ctx, r, c, bank, timings)
	}
	timings["new_leader"] = time.Since(faultAt).Seconds()
	if err := r.step("first commit", func() error {
		if !waitFor(ctx, clusterTimeout, func() bool { return !load.firstCommit().IsZero() }) {
			return fmt.Errorf("no transfer begun after the fault was acknowledged within %v", clusterTimeout)
		}
		return nil
	}); err != nil {
		r.fail("the two surviving nodes of three commit nothing after the %s %s: %v", what, victim, err)
		return finishCluster(ctx, r, c, bank, timings)
	}
	first := load.firstCommit().Sub(faultAt)
	timings["first_commit"] = first.Seconds()
	r.res.Recovery = first

	r.step("load without "+victim, func() error { sleep(ctx, phase); return nil })
	restore := "restart"
	if fault == faultPartitionLeader {
		restore = "heal"
	}
	var target uint64
	err = r.step(restore+" "+victim, func() error {
		if st, err := c.client(newLeader).LocalClusterStatus(ctx); err == nil {
			target = st.CommitIndex
		}
		if fault == faultPartitionLeader {
			c.net.isolate(victim, true)
			return nil
		}
		return c.start(ctx, victim)
	})
	if err != nil {
		r.fail("the %s node %s does not start again: %v", what, victim, err)
		return finishCluster(ctx, r, c, bank, timings)
	}
	restored := time.Now()
	if err := r.step("catch up", func() error { return catchUp(ctx, c, victim, target) }); err != nil {
		r.fail("%v", err)
		logStatuses(ctx, r, c)
	} else {
		timings["catch_up"] = time.Since(restored).Seconds()
	}
	r.step("load with "+victim, func() error { sleep(ctx, phase); return nil })
	stopLoad()
	wg.Wait()
	st := bank.Stats()
	leaderText := "new leader " + newLeader
	if newLeader == leader {
		leaderText = "leader " + leader + " kept, seen"
	}
	r.note("%s %s: %s after %s, first commit after %s, caught up to index %d in %s; %d acknowledged, %d aborted by their check, %d in doubt",
		what, victim, leaderText, secs(timings, "new_leader"), secs(timings, "first_commit"), target, secs(timings, "catch_up"),
		st.Acked, st.Aborted, st.Unknown)
	return finishCluster(ctx, r, c, bank, timings)
}

// startFreshCluster starts three new members, with the extra serve flags
// given. Their peer ports are picked before they start (see
// freeLoopbackAddr), so another process may take one in between: a start
// that fails is retried twice on new ports and empty directories before
// the drill gives up.
func startFreshCluster(ctx context.Context, env *Env, rng *rand.Rand, extra ...string) (*testCluster, error) {
	var err error
	for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
		var c *testCluster
		if c, err = newCluster(env, rng); err != nil {
			return nil, err
		}
		c.extra = extra
		if err = c.startAll(ctx); err == nil {
			return c, nil
		}
		c.close()
		for _, name := range c.names {
			if rerr := os.RemoveAll(filepath.Join(env.Dir, name, "data")); rerr != nil {
				return nil, fmt.Errorf("%w (and clearing %s for a retry: %v)", err, name, rerr)
			}
		}
	}
	return nil, err
}

func secs(t map[string]float64, k string) string {
	v, ok := t[k]
	if !ok {
		return "-"
	}
	return (time.Duration(v * float64(time.Second))).Round(time.Millisecond).String()
}

// catchUp waits until node name has applied index target.
func catchUp(ctx context.Context, c *testCluster, name string, target uint64) error {
	var last uint64
	ok := waitFor(ctx, clusterTimeout, func() bool {
		cl := c.client(name)
		if cl == nil {
			return false
		}
		h, err := cl.Hash(ctx)
		if err != nil {
			return false
		}
		last = h.AppliedIndex
		return last >= target
	})
	if !ok {
		return fmt.Errorf("node %s applied index %d, not the %d the cluster had committed, within %v of its return", name, last, target, clusterTimeout)
	}
	return nil
}

// finishCluster stops the load's effects settling, then checks: the nodes
// converge to one state hash at one index, each holds every acknowledged
// transfer exactly once with the balances conserved, each stops cleanly
// and each data directory verifies clean.
func finishCluster(ctx context.Context, r *run, c *testCluster, bank *Bank, timings map[string]float64) Result {
	r.res.Timings = timings
	r.res.Acked = bank.Stats().Acked
	c.net.healAll()
	for _, name := range c.names {
		if c.client(name) == nil {
			if err := c.start(ctx, name); err != nil {
				r.fail("%v", err)
			}
		}
	}
	wait := clusterTimeout
	if r.failed > 0 {
		wait = 5 * time.Second // a check already failed: waiting longer proves nothing more
	}
	if err := r.step("converge", func() error { return converge(ctx, c, wait) }); err != nil {
		r.fail("%v", err)
	}
	r.step("check", func() error {
		// A write cancelled at the end of the load may still commit after
		// the nodes first agree; a check is kept only if no node's applied
		// index moved while it read (each scan reads one snapshot, the
		// markers and the accounts are two scans).
		for try := 1; ; try++ {
			before, _ := appliedIndexes(ctx, c)
			var names []string
			var states []State
			for _, name := range c.names {
				if cl := c.client(name); cl != nil {
					names, states = append(names, name), append(states, ServerState{cl})
				}
			}
			lost, fails := checkCopies(ctx, bank.All(), names, states, r.logf)
			after, err := appliedIndexes(ctx, c)
			if err == nil && before != after && try < 10 {
				r.logf("the applied indexes moved from %s to %s during the check; again", before, after)
				converge(ctx, c, clusterTimeout)
				continue
			}
			r.res.Lost = max(r.res.Lost, lost)
			for _, f := range fails {
				r.fail("%s", f)
			}
			return nil
		}
	})
	if err := r.step("stop", c.stopAll); err != nil {
		r.fail("%v", err)
	}
	for _, name := range c.names {
		verifyDir(r, c.nodes[name].data)
	}
	return r.result()
}

// converge waits until every node holds the same state hash at the same
// applied index.
func converge(ctx context.Context, c *testCluster, timeout time.Duration) error {
	var last error
	ok := waitFor(ctx, timeout, func() bool {
		var idx, hashes []uint64
		for _, name := range c.names {
			cl := c.client(name)
			if cl == nil {
				last = fmt.Errorf("node %s is not running", name)
				return false
			}
			h, err := cl.Hash(ctx)
			if err != nil {
				last = fmt.Errorf("node %s's state hash: %w", name, err)
				return false
			}
			v, err := strconv.ParseUint(h.StateHash, 16, 64)
			if err != nil {
				last = fmt.Errorf("node %s's state hash %q: %w", name, h.StateHash, err)
				return false
			}
			idx, hashes = append(idx, h.AppliedIndex), append(hashes, v)
		}
		last = SameState(c.names, idx, hashes)
		return last == nil
	})
	if !ok {
		return fmt.Errorf("the nodes did not converge within %v: %v", timeout, last)
	}
	return nil
}

// checkCopies runs the checker on every copy of the state, and returns the
// most acknowledged transfers any one copy lost and a failure for each copy
// that breaks a rule (naming it). logf receives each copy's counts.
func checkCopies(ctx context.Context, rec Record, names []string, states []State, logf func(string, ...any)) (lost int, fails []string) {
	for i, name := range names {
		rep, err := Check(ctx, rec, states[i])
		if err != nil {
			fails = append(fails, fmt.Sprintf("read node %s's state: %v", name, err))
			continue
		}
		lost = max(lost, len(rep.Lost))
		logf("checker on %s: %d acknowledged, %d present, %d in doubt, %d lost, %d problems",
			name, rep.Acked, rep.Present, rep.InDoubt, len(rep.Lost), len(rep.Problems))
		if err := rep.Err(); err != nil {
			fails = append(fails, fmt.Sprintf("checker on node %s: %v", name, err))
		}
	}
	return lost, fails
}

// appliedIndexes describes every node's applied index, to tell whether
// any moved.
func appliedIndexes(ctx context.Context, c *testCluster) (string, error) {
	s := ""
	for _, name := range c.names {
		cl := c.client(name)
		if cl == nil {
			return "", fmt.Errorf("node %s is not running", name)
		}
		h, err := cl.Hash(ctx)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%s=%d ", name, h.AppliedIndex)
	}
	return s, nil
}

// logStatuses writes every node's own view of the cluster to the evidence
// log, for a node that did not catch up.
func logStatuses(ctx context.Context, r *run, c *testCluster) {
	for _, name := range c.names {
		cl := c.client(name)
		if cl == nil {
			continue
		}
		st, err := cl.LocalClusterStatus(ctx)
		if err != nil {
			r.logf("node %s's cluster status: %v", name, err)
			continue
		}
		b, _ := json.Marshal(st)
		r.logf("node %s's cluster status: %s", name, b)
	}
}
