package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// The membership drills: a member joins a running cluster under the bank
// load with `kvtool serve --join-cluster` (hot-join, hotjoin.go: its
// snapshot stream cut twice, the joiner killed once while it receives and
// restarted on the same directory), or a member is replaced
// (replace-node: stopped, its directory wiped, `kvtool cluster remove`,
// a new member joined in its place). Both end with the checks of the other
// cluster drills (finishCluster) over every member left.

var replaceNode = Drill{
	Name:        "replace-node",
	Description: "stop a member of a 3-node cluster under bank load, wipe its directory, cluster remove it, join a new member in its place, check the three agree and commits never stop",
	Cluster:     true,
	Run:         runReplaceNode,
}

// plant, set only by tests, makes a membership drill do its recovery
// wrong, to show the drill then fails: plantRestartEmpty restarts the
// hot-join's joiner on an empty directory (a second add, not a resume),
// plantSkipRemove leaves the replaced member in the membership.
var plant string

const (
	plantRestartEmpty = "restart-empty"
	plantSkipRemove   = "skip-remove"
)

// startJoinRun starts the cluster (its members with the extra serve
// flags), elects, sets up the bank and starts the load on
// targets(leader); it returns what the drills share.
type joinRun struct {
	r      *run
	c      *testCluster
	bank   *Bank
	load   *clusterLoad
	rng    *rand.Rand
	leader string
	stop   func()
}

func startJoinRun(ctx context.Context, env *Env, targets func(c *testCluster, leader string) []string, extra ...string) (*joinRun, *Result) {
	j := &joinRun{r: newRun(env), rng: rand.New(rand.NewPCG(env.Seed, 15))}
	abort := func(format string, args ...any) (*joinRun, *Result) {
		if j.c != nil {
			j.c.close()
		}
		res := j.r.abort(format, args...)
		return nil, &res
	}
	if err := j.r.step("start cluster", func() error {
		var err error
		j.c, err = startFreshCluster(ctx, env, j.rng, extra...)
		return err
	}); err != nil {
		return abort("%v", err)
	}
	if err := j.r.step("elect", func() error {
		var err error
		j.leader, err = j.c.leaderAmong(ctx, j.c.names, "")
		return err
	}); err != nil {
		return abort("%v", err)
	}
	j.bank = NewBank(serverAccounts, serverInitial, 0)
	if err := j.r.step("setup", func() error { return j.bank.Setup(ctx, ServerTarget{j.c.client(j.leader)}) }); err != nil {
		return abort("%v", err)
	}
	j.load = &clusterLoad{bank: j.bank, c: j.c}
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	tg := targets(j.c, j.leader)
	seed := j.rng.Uint64()
	go func() { defer wg.Done(); j.load.run(lctx, tg, serverWorkers, seed) }()
	j.stop = func() { cancel(); wg.Wait() }
	j.r.step("load", func() error {
		sleep(ctx, env.Duration/3)
		waitFor(ctx, clusterTimeout, func() bool { return j.bank.Stats().Acked > 0 })
		return nil
	})
	if j.bank.Stats().Acked == 0 {
		j.stop()
		return abort("no transfer was acknowledged before the membership change: the drill tested nothing (last error: %v)", j.bank.Stats().LastErr)
	}
	return j, nil
}

// committing waits until a transfer is acknowledged beyond the n counted
// before: the cluster still commits.
func (j *joinRun) committing(ctx context.Context, what string) error {
	n := j.bank.Stats().Acked
	if !waitFor(ctx, clusterTimeout, func() bool { return j.bank.Stats().Acked > n }) {
		return fmt.Errorf("no transfer acknowledged within %v %s (%d before): the cluster stopped committing", clusterTimeout, what, n)
	}
	return nil
}

// finish stops the load and runs the common checks; the cluster is closed
// afterwards.
func (j *joinRun) finish(ctx context.Context, timings map[string]float64) Result {
	j.stop()
	defer j.c.close()
	return finishCluster(ctx, j.r, j.c, j.bank, timings)
}

// addJoiner makes node name a member that joins through via's API, with
// its own directory and peer port; it starts nothing.
func (c *testCluster) addJoiner(name, via string) error {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return fmt.Errorf("pick a peer port for %s: %w", name, err)
	}
	c.mu.Lock() // the load's workers read the map
	c.nodes[name] = &clusterNode{name: name, data: filepath.Join(c.env.Dir, name, "data"), peer: addr, join: via}
	c.mu.Unlock()
	c.names = append(c.names, name)
	return nil
}

// memberRoles asks the cluster (through the first running member named)
// for its members and their roles.
func (c *testCluster) memberRoles(ctx context.Context) (map[string]string, error) {
	var last error = errors.New("no member is running")
	for _, name := range c.names {
		cl := c.client(name)
		if cl == nil {
			continue
		}
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			last = fmt.Errorf("node %s's cluster status: %w", name, err)
			continue
		}
		roles := map[string]string{}
		for _, m := range st.Members {
			roles[m.Name] = m.Role
		}
		return roles, nil
	}
	return nil, last
}

// promoted waits until the cluster lists name as a voter.
func (c *testCluster) promoted(ctx context.Context, name string) error {
	var last string
	ok := waitFor(ctx, clusterTimeout, func() bool {
		roles, err := c.memberRoles(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		role, ok := roles[name]
		last = fmt.Sprintf("the members are %v", roles)
		return ok && role != "learner"
	})
	if !ok {
		return fmt.Errorf("%s was not promoted to a voter within %v: %s", name, clusterTimeout, last)
	}
	return nil
}

// apiOf is node name's HTTP API address ("" while it is down).
func (c *testCluster) apiOf(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if srv := c.nodes[name].srv; srv != nil {
		return srv.addr
	}
	return ""
}

// startVictimRun starts a join run whose fault falls on a follower drawn
// from the seed (salt tells the drills' draws apart); the others carry
// the load.
func startVictimRun(ctx context.Context, env *Env, salt uint64) (j *joinRun, victim string, res *Result) {
	j, res = startJoinRun(ctx, env, func(c *testCluster, leader string) []string {
		f := without(c.names, leader)
		victim = f[rand.New(rand.NewPCG(env.Seed, salt)).IntN(len(f))]
		return without(c.names, victim)
	})
	return j, victim, res
}

func runReplaceNode(ctx context.Context, env *Env) Result {
	j, victim, res := startVictimRun(ctx, env, 16)
	if res != nil {
		return *res
	}
	r, c := j.r, j.c
	timings := map[string]float64{}
	const joiner = "n4"
	faultAt := time.Now()
	c.kill(victim)
	j.load.fault(faultAt)
	r.logf("killed %s (SIGKILL), a follower; leader %s", victim, j.leader)
	if err := r.step("wipe "+victim, func() error { return os.RemoveAll(c.nodes[victim].data) }); err != nil {
		r.fail("wipe %s: %v", c.nodes[victim].data, err)
	}
	survivors := without(c.names, victim)
	if plant != plantSkipRemove {
		if err := r.step("cluster remove "+victim, func() error { return j.clusterRemove(ctx, c.apiOf(survivors[0]), victim) }); err != nil {
			r.fail("%v", err)
			return j.finish(ctx, timings)
		}
	}
	c.names = survivors // the removed member is no longer checked
	if err := r.step("committing without "+victim, func() error { return j.committing(ctx, "after removing "+victim) }); err != nil {
		r.fail("%v", err)
	} else {
		timings["first_commit"] = j.load.firstCommit().Sub(faultAt).Seconds()
	}
	if err := c.addJoiner(joiner, c.apiOf(survivors[j.rng.IntN(len(survivors))])); err != nil {
		r.fail("%v", err)
		return j.finish(ctx, timings)
	}
	joinAt := time.Now()
	if err := r.step("join "+joiner, func() error { return c.start(ctx, joiner) }); err != nil {
		r.fail("%s does not start with --join-cluster: %v", joiner, err)
		return j.finish(ctx, timings)
	}
	if err := r.step("promote "+joiner, func() error { return c.promoted(ctx, joiner) }); err != nil {
		r.fail("%v", err)
		logStatuses(ctx, r, c)
	} else {
		timings["promoted"] = time.Since(joinAt).Seconds()
		r.res.Recovery = time.Since(faultAt)
	}
	// The membership is exactly the three: the replaced one is gone.
	if roles, err := c.memberRoles(ctx); err != nil {
		r.fail("%v", err)
	} else if got := sortedKeys(roles); strings.Join(got, ",") != strings.Join(sortedCopy(c.names), ",") {
		r.fail("after replacing %s by %s the members are %v, want %v", victim, joiner, roles, sortedCopy(c.names))
	}
	if err := r.step("committing with "+joiner, func() error { return j.committing(ctx, "after the promotion") }); err != nil {
		r.fail("%v", err)
	}
	r.note("%s killed, its directory wiped, removed with kvtool cluster remove; %s joined in its place and was promoted %s after it started; first commit %s after the kill",
		victim, joiner, secs(timings, "promoted"), secs(timings, "first_commit"))
	return j.finish(ctx, timings)
}

// clusterRemove runs `kvtool cluster remove` against api, as an operator
// would, with the members' secret; its output goes to the evidence log.
func (j *joinRun) clusterRemove(ctx context.Context, api, name string) error {
	cctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, j.c.env.Exe, "cluster", "remove", "--addr", api, name)
	cmd.Env = append(os.Environ(), "KVTOOL_SECRET="+j.c.secret)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	j.r.logf("kvtool cluster remove --addr %s %s: %v\n%s", api, name, err, out.String())
	if err != nil {
		return fmt.Errorf("kvtool cluster remove --addr %s %s: %v: %s", api, name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

func orWord(s, w string) string {
	if s == "" {
		return w
	}
	return "a " + s
}

func sortedKeys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}
