package drill

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

var diskFull = Drill{
	Name: "disk-full",
	Description: "fill a small tmpfs under HTTP bank load; writes are refused cleanly, reads go on, " +
		"writes resume once space is freed, nothing is lost (skipped where mounting is not permitted)",
	Run: runDiskFull,
}

// errNoMount is wrapped when the drill may not mount its file system.
var errNoMount = errors.New("mounting a file system is not permitted here")

// The disk-full file system and load.
const (
	dfSize     = 8 << 20    // the tmpfs
	dfHeadroom = 1536 << 10 // what the ballast leaves free for the server to fill
	dfPad      = 2048       // bytes added to each transfer, so the headroom fills quickly
	// dfResume bounds the wait for writes to resume after space is freed.
	dfResume = 10 * time.Second
)

// refusals classifies the error answers a Target gets: a clean refusal is
// an answer from a live server saying it could not write; anything else
// (no answer, a dropped connection) is not clean.
type refusals struct {
	t       Target
	clean   atomic.Int64
	unclean atomic.Int64
	mu      sync.Mutex
	first   error // the first clean refusal
	bad     error // the first unclean error
}

// Commit implements Target.
func (f *refusals) Commit(ctx context.Context, txn *store.Txn) (uint64, error) {
	idx, err := f.t.Commit(ctx, txn)
	var ce *client.Error
	switch {
	case err == nil, errors.Is(err, ErrAborted), ctx.Err() != nil: // the drill itself stopped the request
	case errors.As(err, &ce) && ce.Status >= 500:
		if f.clean.Add(1) == 1 {
			f.mu.Lock()
			f.first = err
			f.mu.Unlock()
		}
	default:
		if f.unclean.Add(1) == 1 {
			f.mu.Lock()
			f.bad = err
			f.mu.Unlock()
		}
	}
	return idx, err
}

func runDiskFull(ctx context.Context, env *Env) Result {
	r := newRun(env)
	mnt := filepath.Join(env.Dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return r.abort("%v", err)
	}
	if err := mountTmpfs(mnt, dfSize); errors.Is(err, errNoMount) {
		return r.skip("%v (run as root, or with CAP_SYS_ADMIN, to run this drill)", err)
	} else if err != nil {
		return r.abort("%v", err)
	}
	r.logf("mounted a tmpfs of %d MiB on %s", dfSize>>20, mnt)
	data := filepath.Join(mnt, "data")
	var srv *server
	defer func() {
		if srv != nil && srv.alive() {
			srv.kill()
		}
		if err := copyOut(vfs.Default, data, filepath.Join(env.Dir, "data")); err != nil {
			r.logf("could not copy the data directory out of the tmpfs: %v", err)
		}
		if err := unmount(mnt); err != nil {
			r.logf("%v", err)
		}
	}()
	return diskFullOn(ctx, r, env, mnt, data, &srv)
}

// diskFullOn runs the drill on the mounted file system mnt. *srv is the
// running server, for the caller to kill.
func diskFullOn(ctx context.Context, r *run, env *Env, mnt, data string, srv **server) Result {
	bank := NewBank(serverAccounts, serverInitial, dfPad)
	var err error
	if *srv, err = startStep(ctx, r, "start", env, data, 1); err != nil {
		return r.abort("%v", err)
	}
	if err := r.step("setup", func() error { return bank.Setup(ctx, ServerTarget{(*srv).c}) }); err != nil {
		return r.abort("%v", err)
	}
	ballast := filepath.Join(mnt, "ballast")
	if err := r.step("ballast", func() error { return fillBallast(ballast, mnt) }); err != nil {
		return r.abort("fill %s: %v", ballast, err)
	}
	tgt := &refusals{t: ServerTarget{(*srv).c}}
	full := r.step("load until the disk is full", func() error { return loadUntilRefused(ctx, bank, tgt, env) })
	st := bank.Stats()
	r.res.Acked = st.Acked
	if full != nil {
		return r.abort("%v", full)
	}
	r.note("the disk filled after %d transfers; first refusal: %v", st.Acked, tgt.first)
	checkRefusedCleanly(ctx, r, bank, tgt, *srv)
	if !(*srv).alive() {
		r.fail("the server died when the disk filled (see server-1.log)")
		return r.result()
	}
	checkReadsGoOn(ctx, r, bank, *srv)
	checkWritesResume(ctx, r, bank, tgt, ballast, env)
	r.res.Acked = bank.Stats().Acked
	if err := r.step("stop", func() error { return (*srv).stop(stopTimeout) }); err != nil {
		r.note("%v", err)
	}
	if *srv, err = startStep(ctx, r, "restart", env, data, 2); err != nil {
		r.fail("the server does not start again after the disk was full: %v", err)
		return r.result()
	}
	checkServer(ctx, r, bank, *srv, data)
	if err := r.step("stop", func() error { return (*srv).stop(stopTimeout) }); err != nil {
		r.fail("%v", err)
	}
	verifyDir(r, data)
	return r.result()
}

// fillBallast fills the file system of mnt with the file path, leaving
// dfHeadroom bytes free.
func fillBallast(path, mnt string) error {
	free, err := freeBytes(mnt)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	chunk := make([]byte, 256<<10)
	for left := free - dfHeadroom; left > 0; left -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(int64(len(chunk)), left)]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// loadUntilRefused runs the bank load until the server refuses a write
// (or fails to answer one).
func loadUntilRefused(ctx context.Context, bank *Bank, tgt *refusals, env *Env) error {
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		bank.Run(lctx, tgt, serverWorkers, env.Seed)
	}()
	ok := waitFor(ctx, 2*time.Minute, func() bool { return tgt.clean.Load()+tgt.unclean.Load() > 0 })
	cancel()
	<-done
	if !ok {
		return fmt.Errorf("the server took every write for 2 minutes with %d KiB free: the disk never filled", dfHeadroom>>10)
	}
	return nil
}

// checkRefusedCleanly checks that every write refused while the disk was
// full got an answer saying so, and that the server still refuses more.
func checkRefusedCleanly(ctx context.Context, r *run, bank *Bank, tgt *refusals, srv *server) {
	r.step("writes are refused cleanly", func() error {
		rng := rand.New(rand.NewPCG(1, 2))
		for range 5 {
			bank.Attempt(ctx, tgt, rng)
		}
		return nil
	})
	if n := tgt.unclean.Load(); n > 0 {
		r.fail("%d writes got no clean answer while the disk was full; the first: %v", n, tgt.bad)
	}
}

// checkReadsGoOn reads the whole bank from the server while its disk is
// full and checks it.
func checkReadsGoOn(ctx context.Context, r *run, bank *Bank, srv *server) {
	var rep *Report
	err := r.step("reads go on", func() error {
		var err error
		rep, err = Check(ctx, bank.All(), ServerState{srv.c})
		return err
	})
	if !r.check("reads while the disk is full", err) {
		return
	}
	recordReport(r, rep, "while the disk is full")
}

// checkWritesResume frees the ballast and checks that the server takes
// writes again without a restart.
func checkWritesResume(ctx context.Context, r *run, bank *Bank, tgt *refusals, ballast string, env *Env) {
	if err := os.Remove(ballast); err != nil {
		r.fail("free space: %v", err)
		return
	}
	freed := time.Now()
	var last error
	resumed := false
	r.step("writes resume", func() error {
		rng := rand.New(rand.NewPCG(env.Seed, 4))
		resumed = waitFor(ctx, dfResume, func() bool {
			out, err := bank.Attempt(ctx, tgt, rng)
			last = err
			if out != Acked && out != Aborted {
				sleep(ctx, 50*time.Millisecond) // a refused write is answered at once
				return false
			}
			return true
		})
		return nil
	})
	if !resumed {
		r.fail("writes did not resume within %v after space was freed, without a restart; the last answer: %v", dfResume, last)
		return
	}
	r.res.Recovery = time.Since(freed)
	r.step("load after the disk was freed", func() error {
		lctx, cancel := context.WithTimeout(ctx, env.Duration/4)
		defer cancel()
		before := bank.Stats().Acked
		bank.Run(lctx, tgt, serverWorkers, env.Seed+1)
		r.logf("%d more transfers acknowledged", bank.Stats().Acked-before)
		return nil
	})
}
