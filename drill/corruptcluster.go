package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// corrupt-snapshot on a cluster: a follower of a 3-node cluster under the
// bank load takes a base checkpoint and a delta, is stopped, and gets a
// byte flipped in each and in its raft log. `kvtool verify` must name the
// three files and offsets
// (exit 3), and starting the member must be refused (exit 3, naming the
// file) rather than serve a wrong state. It is then rebuilt from its
// peers the way the README's recovery section says, with kvtool's own
// commands and safely for raft (its raft ID is never restarted on an
// emptied log): the damaged directory is moved aside as evidence, a new
// member joins as a learner (serve --join-cluster --learner) and takes the
// damaged one's vote in one joint change (kvtool cluster replace). The
// three members left must then hold every acknowledged transfer once, the
// same state hash at the same index, and verify clean.

var corruptSnapshotCluster = Drill{
	Name: "corrupt-snapshot-cluster",
	Description: "stop a follower of a 3-node cluster under bank load, flip a byte in its base checkpoint, a delta and its raft log; `verify` names the three, " +
		"its start is refused; rebuild it from its peers (quarantine the directory, join a learner, cluster replace), check the three agree",
	Cluster: true,
	Run:     runCorruptSnapshotCluster,
}

// Plants of the corrupt-snapshot-cluster drill (see plant): no byte is
// flipped, or the replace is left out of the rebuild.
const (
	plantNoFlip      = "no-flip"
	plantSkipReplace = "skip-replace"
)

func runCorruptSnapshotCluster(ctx context.Context, env *Env) Result {
	j, victim, res := startVictimRun(ctx, env, 17)
	if res != nil {
		return *res
	}
	r, c := j.r, j.c
	timings := map[string]float64{}
	if err := r.step("checkpoint and delta on "+victim, func() error { return j.snapshots(ctx, victim) }); err != nil {
		r.fail("%v", err)
		return j.finish(ctx, timings)
	}
	faultAt := time.Now()
	if err := r.step("stop "+victim, func() error { return c.stop(victim) }); err != nil {
		r.fail("%v", err)
	}
	j.load.fault(faultAt)
	data := c.nodes[victim].data
	var damaged map[string]int64
	if err := r.step("flip a byte in the base, a delta and the raft log", func() error {
		var err error
		damaged, err = flipSnapshots(data, j.rng)
		return err
	}); err != nil {
		j.stop()
		j.c.close()
		return r.abort("%v", err)
	}
	r.step("kvtool verify", func() error { j.verifyNames(ctx, data, damaged); return nil })
	r.step("start refused", func() error { j.startRefused(victim, damaged); return nil })

	// The rebuild, as the README's recovery section says.
	survivors := without(c.names, victim)
	quarantine := data + ".damaged"
	if err := r.step("quarantine "+victim+"'s directory", func() error { return os.Rename(data, quarantine) }); err != nil {
		r.fail("move %s aside: %v", data, err)
		return j.finish(ctx, timings)
	}
	r.logf("moved %s to %s (the evidence)", data, quarantine)
	const fresh = "n4"
	if err := c.addJoiner(fresh, c.apiOf(survivors[j.rng.IntN(len(survivors))])); err != nil {
		r.fail("%v", err)
		return j.finish(ctx, timings)
	}
	c.nodes[fresh].extra = []string{"--learner"}
	if err := r.step("join "+fresh+" as a learner", func() error { return c.start(ctx, fresh) }); err != nil {
		r.fail("%s does not start with --join-cluster --learner: %v", fresh, err)
		return j.finish(ctx, timings)
	}
	if plant != plantSkipReplace {
		if err := r.step("cluster replace "+victim+" "+fresh, func() error { return j.replace(ctx, c.apiOf(survivors[0]), victim, fresh) }); err != nil {
			r.fail("%v", err)
			return j.finish(ctx, timings)
		}
		timings["replaced"] = time.Since(faultAt).Seconds()
		r.res.Recovery = time.Since(faultAt)
	}
	c.names = append(survivors, fresh)
	if roles, err := c.leaderView(ctx); err != nil {
		r.fail("%v", err)
	} else if got := sortedKeys(roles); strings.Join(got, ",") != strings.Join(sortedCopy(c.names), ",") || roles[fresh] == "learner" {
		r.fail("after rebuilding %s as %s the members are %v (the leader's view), want %v, all voters", victim, fresh, roles, sortedCopy(c.names))
	}
	if err := r.step("committing with "+fresh, func() error { return j.committing(ctx, "after the rebuild") }); err != nil {
		r.fail("%v", err)
	}
	r.note("%s stopped, a byte flipped in %s; verify named each file and offset, its start was refused; "+
		"rebuilt from its peers: directory quarantined, %s joined as a learner and took its vote with kvtool cluster replace %s after the stop",
		victim, strings.Join(baseNames(damaged), " and "), fresh, secs(timings, "replaced"))
	return j.finish(ctx, timings)
}

// snapshots has node name take a base checkpoint, then (once it applied
// more) a delta, through its API.
func (j *joinRun) snapshots(ctx context.Context, name string) error {
	cl := j.c.client(name)
	if cl == nil {
		return fmt.Errorf("node %s is down", name)
	}
	cp, err := cl.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("checkpoint on %s: %w", name, err)
	}
	if !waitFor(ctx, clusterTimeout, func() bool {
		h, err := cl.Hash(ctx)
		return err == nil && h.AppliedIndex > cp.Index
	}) {
		return fmt.Errorf("node %s applied nothing after its checkpoint at %d within %v", name, cp.Index, clusterTimeout)
	}
	if _, err := cl.Delta(ctx); err != nil {
		return fmt.Errorf("delta on %s: %w", name, err)
	}
	return nil
}

// leaderView returns the members and their roles as the leader's applied
// membership has them (a syncing member's own word may lag its add).
func (c *testCluster) leaderView(ctx context.Context) (map[string]string, error) {
	leader, err := c.leaderAmong(ctx, c.names, "")
	if err != nil {
		return nil, err
	}
	st, err := c.client(leader).LocalClusterStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("leader %s's cluster status: %w", leader, err)
	}
	roles := map[string]string{}
	for _, m := range st.Members {
		roles[m.Name] = m.Role
	}
	return roles, nil
}

// stop stops node name with SIGTERM.
func (c *testCluster) stop(name string) error {
	c.mu.Lock()
	srv := c.nodes[name].srv
	c.nodes[name].srv = nil
	c.mu.Unlock()
	if srv == nil {
		return fmt.Errorf("node %s is not running", name)
	}
	return srv.stop(stopTimeout)
}

// flipSnapshots flips one byte, at a random offset, in the base checkpoint
// and in the newest delta the manifest of data names, and returns each
// file's offset.
func flipSnapshots(data string, rng *rand.Rand) (map[string]int64, error) {
	man, err := manifest.Load(vfs.Default, data)
	if err != nil {
		return nil, fmt.Errorf("read %s's manifest: %w", data, err)
	}
	if man.Base == nil || len(man.Deltas) == 0 {
		return nil, fmt.Errorf("%s's manifest names no base checkpoint and delta (base %v, %d deltas)", data, man.Base, len(man.Deltas))
	}
	out := map[string]int64{}
	for _, name := range []string{man.Base.Name, man.Deltas[len(man.Deltas)-1].Name} {
		path := filepath.Join(data, format.SnapDir, name)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		off := rng.Int64N(fi.Size())
		if plant != plantNoFlip {
			if err := flipByte(path, off, byte(1+rng.IntN(255))); err != nil {
				return nil, err
			}
		}
		out[path] = off
	}
	// And a record in the first half of the raft log: damage, not a torn
	// tail (intact records follow it).
	raftDir := filepath.Join(data, format.RaftDir)
	rep, err := segment.Verify(vfs.Default, raftDir, segment.VerifyOptions{})
	if err != nil {
		return nil, fmt.Errorf("read %s's raft log: %w", data, err)
	}
	if len(rep.Segments) == 0 || rep.Segments[0].Size < 4096 {
		return nil, fmt.Errorf("%s's raft log has no segment of 4 KiB of records to damage (%d segments)", data, len(rep.Segments))
	}
	seg := rep.Segments[0]
	off := 1024 + rng.Int64N(seg.Size/2-1024)
	if plant != plantNoFlip {
		if err := flipByte(seg.Path, off, byte(1+rng.IntN(255))); err != nil {
			return nil, err
		}
	}
	out[seg.Path] = off
	return out, nil
}

func baseNames(m map[string]int64) []string {
	var out []string
	for p, off := range m {
		out = append(out, fmt.Sprintf("%s (byte %d)", filepath.Base(p), off))
	}
	return sortedCopy(out)
}

// verifyNames runs `kvtool verify --json` on data as an operator would and
// fails the drill unless it exits 3 naming each damaged file at an offset
// at or before its flipped byte.
func (j *joinRun) verifyNames(ctx context.Context, data string, damaged map[string]int64) {
	r := j.r
	cctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, j.c.env.Exe, "verify", "--json", "--data", data)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r.logf("kvtool verify --json --data %s: %v\n%s", data, err, errb.String())
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		r.fail("kvtool verify on the damaged %s: %v, want exit 3 (%s)", data, err, strings.TrimSpace(errb.String()))
	}
	var rep struct {
		Files []struct {
			Problems []struct {
				Path   string `json:"path"`
				Offset int64  `json:"offset"`
				Reason string `json:"reason"`
			} `json:"problems"`
		} `json:"files"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		r.fail("kvtool verify --json on %s: %v", data, err)
		return
	}
	for path, off := range damaged {
		named := false
		for _, f := range rep.Files {
			for _, p := range f.Problems {
				if p.Path == path && p.Offset >= 0 && p.Offset <= off {
					named = true
					r.logf("verify names %s at offset %d (%s); the flipped byte is at %d", path, p.Offset, p.Reason, off)
				}
			}
		}
		if !named {
			r.fail("kvtool verify does not name %s at an offset at or before its flipped byte %d", path, off)
		}
	}
}

// startRefused starts node name on its damaged directory with its usual
// flags and fails the drill unless it exits 3 without serving, naming one
// of the damaged files.
func (j *joinRun) startRefused(name string, damaged map[string]int64) {
	r, c := j.r, j.c
	logPath, args, err := c.prepare(name)
	if err != nil {
		r.fail("%v", err)
		return
	}
	srv, lines, err := spawnServer(c.env.Exe, c.nodes[name].data, logPath, []string{"KVTOOL_SECRET=" + c.secret}, args...)
	if err != nil {
		r.fail("start %s: %v", name, err)
		return
	}
	select {
	case line := <-lines:
		if strings.Contains(line, "listen_addr") {
			srv.kill()
			r.fail("%s started on its damaged directory and served (%s): recovery must refuse it", name, strings.TrimSpace(line))
			return
		}
	case <-time.After(startTimeout):
		srv.kill()
		r.fail("%s neither served nor exited within %v on its damaged directory (log %s)", name, startTimeout, logPath)
		return
	}
	<-srv.done
	srv.close()
	b, _ := os.ReadFile(logPath)
	var ee *exec.ExitError
	if !errors.As(srv.err, &ee) || ee.ExitCode() != 3 {
		r.fail("%s's start on its damaged directory ended with %v, want exit 3 (corruption): %s", name, srv.err, strings.TrimSpace(string(b)))
	}
	for path := range damaged {
		if strings.Contains(string(b), path) {
			r.logf("%s's start refused (%v): %s", name, srv.err, strings.TrimSpace(string(b)))
			return
		}
	}
	r.fail("%s's refused start does not name a damaged file (%s): %s", name, strings.Join(baseNames(damaged), ", "), strings.TrimSpace(string(b)))
}

// replace runs `kvtool cluster replace --addr api old add` until the
// leader takes it: it refuses while the learner's log trails its own.
func (j *joinRun) replace(ctx context.Context, api, old, add string) error {
	var last string
	ok := waitFor(ctx, clusterTimeout, func() bool {
		cctx, cancel := context.WithTimeout(ctx, clusterTimeout)
		defer cancel()
		cmd := exec.CommandContext(cctx, j.c.env.Exe, "cluster", "replace", "--addr", api, old, add)
		cmd.Env = append(os.Environ(), "KVTOOL_SECRET="+j.c.secret)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		last = fmt.Sprintf("%v: %s", err, strings.TrimSpace(out.String()))
		j.r.logf("kvtool cluster replace --addr %s %s %s: %s", api, old, add, last)
		if err == nil {
			return true
		}
		sleep(ctx, 200*time.Millisecond) // the learner catches up meanwhile; the command is the probe
		return false
	})
	if !ok {
		return fmt.Errorf("kvtool cluster replace --addr %s %s %s not taken within %v: %s", api, old, add, clusterTimeout, last)
	}
	return nil
}
