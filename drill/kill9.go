package drill

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

var kill9 = Drill{
	Name:        "kill-9",
	Description: "SIGKILL the real server under HTTP bank load and maintenance at a random moment, restart it, check every acknowledged transfer",
	Run:         runKill9,
}

// Bank shape of the drills that drive a server.
const (
	serverAccounts = 20
	serverInitial  = 1000
	serverWorkers  = 8
)

// stopTimeout bounds a clean shutdown of a drill's server.
const stopTimeout = 30 * time.Second

func runKill9(ctx context.Context, env *Env) Result {
	r := newRun(env)
	rng := rand.New(rand.NewPCG(env.Seed, 9))
	data := filepath.Join(env.Dir, "data")
	bank := NewBank(serverAccounts, serverInitial, 0)
	srv, err := startStep(ctx, r, "start", env, data, 1)
	if err != nil {
		return r.abort("%v", err)
	}
	defer func() {
		if srv != nil && srv.alive() {
			srv.kill()
		}
	}()
	if err := r.step("setup", func() error { return bank.Setup(ctx, ServerTarget{srv.c}) }); err != nil {
		return r.abort("%v", err)
	}
	killAt := env.Duration/4 + time.Duration(rng.Int64N(int64(env.Duration*3/4)+1))
	var killed time.Time
	var maint map[string]int
	r.step("load and kill", func() error {
		killed, maint = loadUntilKilled(ctx, r, bank, srv, killAt, rng.Uint64())
		return nil
	})
	st := bank.Stats()
	r.note("killed after %v of load: %d transfers acknowledged, %d aborted by their check, %d in flight or refused; maintenance done: %s",
		killAt.Round(time.Millisecond), st.Acked, st.Aborted, st.Unknown, maintText(maint))
	r.res.Acked = st.Acked
	if st.Acked == 0 {
		return r.abort("no transfer was acknowledged before the kill: the drill tested nothing")
	}
	srv, err = startStep(ctx, r, "restart", env, data, 2)
	if err != nil {
		r.fail("the server does not start after the kill: %v", err)
		return r.result()
	}
	if _, err := srv.c.Status(ctx); err != nil {
		r.fail("the restarted server does not answer: %v", err)
		return r.result()
	}
	r.res.Recovery = time.Since(killed)
	checkServer(ctx, r, bank, srv, data)
	if err := r.step("stop", func() error { return srv.stop(stopTimeout) }); err != nil {
		r.fail("%v", err)
	}
	verifyDir(r, data)
	return r.result()
}

// startStep starts the server as a timed step; n numbers its log file.
func startStep(ctx context.Context, r *run, name string, env *Env, data string, n int, args ...string) (*server, error) {
	var srv *server
	err := r.step(name, func() error {
		var err error
		srv, err = startServer(ctx, env.Exe, data, filepath.Join(env.Dir, fmt.Sprintf("server-%d.log", n)),
			append([]string{"--segment-size", "256KiB"}, args...)...)
		return err
	})
	return srv, err
}

// loadUntilKilled drives bank transfers and maintenance against srv and
// SIGKILLs it after d. It returns the moment of the kill and the
// maintenance steps completed.
func loadUntilKilled(ctx context.Context, r *run, bank *Bank, srv *server, d time.Duration, seed uint64) (time.Time, map[string]int) {
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var maint map[string]int
	wg.Add(2)
	go func() { defer wg.Done(); bank.Run(lctx, ServerTarget{srv.c}, serverWorkers, seed) }()
	go func() {
		defer wg.Done()
		maint = maintain(lctx, r, serverSteps(srv.c), rand.New(rand.NewPCG(seed, 2)), 150*time.Millisecond, nil)
	}()
	timer := time.NewTimer(d)
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	srv.kill()
	killed := time.Now()
	cancel()
	wg.Wait()
	return killed, maint
}

// checkServer checks a restarted server: the bank against what was
// acknowledged, and its live state hash against a replay of its directory.
func checkServer(ctx context.Context, r *run, bank *Bank, srv *server, data string) {
	var rep *Report
	err := r.step("check", func() error {
		var err error
		rep, err = Check(ctx, bank.All(), ServerState{srv.c})
		return err
	})
	if err != nil {
		r.fail("read the restarted server's state: %v", err)
		return
	}
	recordReport(r, rep, "after restart")
	r.step("replay", func() error {
		live, err := srv.c.Hash(ctx)
		if err != nil {
			r.fail("the live server's state hash: %v", err)
			return err
		}
		res, err := datadir.Replay(vfs.Default, data, datadir.ReplayOptions{})
		if err != nil {
			r.fail("replay of %s: %v", data, err)
			return err
		}
		r.logf("live: index %d hash %s; replay: index %d hash %s", live.AppliedIndex, live.StateHash,
			res.AppliedIndex, format.FormatStateHash(res.StateHash))
		if live.AppliedIndex != res.AppliedIndex || live.StateHash != format.FormatStateHash(res.StateHash) {
			r.fail("the live server holds state %s at index %d but a replay of its directory gives %s at index %d",
				live.StateHash, live.AppliedIndex, format.FormatStateHash(res.StateHash), res.AppliedIndex)
		}
		return nil
	})
}

// recordReport adds a checker report to the result.
func recordReport(r *run, rep *Report, when string) {
	r.res.Lost += len(rep.Lost)
	r.logf("checker %s: %d acknowledged, %d present, %d in doubt, %d excused, %d lost, %d problems",
		when, rep.Acked, rep.Present, rep.InDoubt, rep.Excused, len(rep.Lost), len(rep.Problems))
	r.check("checker "+when, rep.Err())
}

// verifyDir runs the whole-directory verify and fails on any fault.
func verifyDir(r *run, data string) {
	var rep *datadir.Report
	err := r.step("verify", func() error {
		var err error
		rep, err = datadir.Verify(vfs.Default, data, datadir.VerifyOptions{Raft: cluster.VerifyRaft}) // a member's raft log too
		return err
	})
	switch {
	case err != nil:
		r.fail("verify %s: %v", data, err)
	case !rep.OK():
		r.fail("verify %s found %d faults: %v", data, rep.Faults, rep.Err())
	}
}
