package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The hot-join drill. The joiner's peer listener sits behind a drill link
// (proxy.go) that it advertises with --advertise-peer, so every byte the
// members send it, raft messages and the snapshot stream, goes through
// the link. The members' raft logs are compacted before it joins, so it
// can only catch up by a snapshot (streamed through transfer/, slowed by
// --snapshot-max-rate and cut into small chunks so it is seen moving);
// the drill cuts the link twice while the stream runs, SIGKILLs the joiner
// once while it receives, restarts it on its directory (it resumes, not a
// second add), and waits for its promotion.

// hotJoinFlags are the founding members' extra serve flags: a short
// retained log compacted often (so a compaction before the join is
// quick), and slow, small-chunked snapshot sends (so the drill sees each
// one move before it ends).
var hotJoinFlags = []string{"--log-retain-entries", "16", "--log-compact-every", "500ms",
	"--snapshot-chunk-size", "16KiB", "--snapshot-max-rate", "128KiB"}

// hotJoinWindow is the joiner's --snapshot-window: what a sender may have
// in flight beyond what the joiner holds durably, so the most a cut
// should cost again.
const hotJoinWindow = 64 << 10

// hotJoinPad is the incompressible state written before the join so that
// the snapshot takes several seconds at the members' rate.
const (
	hotJoinPadKeys  = 48
	hotJoinPadBytes = 8 << 10
)

var hotJoin = Drill{
	Name: "hot-join",
	Description: "join a 4th member to a 3-node cluster under bank load by snapshot (logs compacted first) through a proxy it advertises " +
		"with --advertise-peer; cut the proxy twice and SIGKILL the joiner once while the snapshot streams; it resumes, is promoted, all four agree",
	Cluster: true,
	Run:     runHotJoin,
}

// plantNoCompact (see plant) leaves the members' logs whole: the joiner
// catches up from the log, and the drill must say its faults were not
// injected.
const plantNoCompact = "no-compact"

// joinSync is what a syncing joiner's GET /v1/status says of its snapshot
// (node's syncingMember); Syncing is false once it serves.
type joinSync struct {
	Syncing     bool `json:"syncing"`
	ClusterJoin *struct {
		Snapshot *struct {
			Phase     string `json:"phase"`
			Resumed   int    `json:"resumed"`
			Restarted int    `json:"restarted"`
			Err       string `json:"error"`
			Transfer  struct {
				Resumed      bool  `json:"resumed"`
				Bytes        int64 `json:"bytes"`
				BytesDone    int64 `json:"bytes_done"`
				SessionBytes int64 `json:"session_bytes"`
			} `json:"transfer"`
		} `json:"snapshot"`
	} `json:"cluster_join"`
}

// snapPhase is the joiner's snapshot phase ("" before one came, "served"
// once it serves).
func (s *joinSync) snapPhase() string {
	switch {
	case !s.Syncing:
		return "served"
	case s.ClusterJoin == nil || s.ClusterJoin.Snapshot == nil:
		return ""
	}
	return s.ClusterJoin.Snapshot.Phase
}

// moving reports a session that has moved bytes of a snapshot it has
// not finished.
func (s *joinSync) moving() bool {
	if s.snapPhase() != "receiving" {
		return false
	}
	t := s.ClusterJoin.Snapshot.Transfer
	return t.SessionBytes > 0 && t.BytesDone < t.Bytes
}

// finished reports a joiner past receiving its snapshot.
func (s *joinSync) finished() bool {
	switch s.snapPhase() {
	case "received", "installing", "installed", "superseded", "served":
		return true
	}
	return false
}

func (s *joinSync) String() string {
	if s.snapPhase() == "" || s.snapPhase() == "served" {
		return "phase " + orDash(s.snapPhase())
	}
	sn := s.ClusterJoin.Snapshot
	return fmt.Sprintf("phase %s, %d of %d bytes held (%d this session), %d sessions resumed, %d restarted %s",
		sn.Phase, sn.Transfer.BytesDone, sn.Transfer.Bytes, sn.Transfer.SessionBytes, sn.Resumed, sn.Restarted, sn.Err)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// joinerSync reads node name's GET /v1/status.
func (c *testCluster) joinerSync(ctx context.Context, name string) (*joinSync, error) {
	api := c.apiOf(name)
	if api == "" {
		return nil, fmt.Errorf("node %s is down", name)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+"/v1/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s joinSync
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, fmt.Errorf("node %s's status: %w", name, err)
	}
	return &s, nil
}

// waitSync polls the joiner's status until cond holds (true) or the
// snapshot is past receiving (false, unless cond accepts that), and
// returns the last status seen.
func (c *testCluster) waitSync(ctx context.Context, name string, cond func(*joinSync) bool) (*joinSync, bool) {
	var last *joinSync
	var ok bool
	waitFor(ctx, clusterTimeout, func() bool {
		s, err := c.joinerSync(ctx, name)
		if err != nil {
			return false
		}
		last = s
		ok = cond(s)
		return ok || s.finished()
	})
	return last, ok
}

// snapshotBytesSent sums the snapshot chunk bytes the members named have
// written (resends included).
func (c *testCluster) snapshotBytesSent(ctx context.Context, names []string) int64 {
	sent, _ := c.snapshotSends(ctx, names)
	return sent
}

// snapshotSends sums the members' snapshot chunk bytes written and their
// failed snapshot sends. A send's bytes are counted when it returns, just
// before it is counted failed.
func (c *testCluster) snapshotSends(ctx context.Context, names []string) (sent, failed int64) {
	for _, name := range names {
		if cl := c.client(name); cl != nil {
			if st, err := cl.LocalClusterStatus(ctx); err == nil {
				sent, failed = sent+st.SnapshotBytesSent, failed+st.SnapshotsFailed
			}
		}
	}
	return sent, failed
}

// sendEnded waits until the members count a failed snapshot send more
// than failedBefore (the interrupted one returned, its bytes counted) and
// returns their bytes sent then; ok is false if none was counted in time.
func (c *testCluster) sendEnded(ctx context.Context, names []string, failedBefore int64) (sent int64, ok bool) {
	ok = waitFor(ctx, clusterTimeout, func() bool {
		var failed int64
		sent, failed = c.snapshotSends(ctx, names)
		return failed > failedBefore
	})
	return sent, ok
}

// compactLogs has every member checkpoint and compact its store (POST
// /v1/admin/compact, what `kvtool wal compact --addr` does) and waits
// until each has compacted its raft log past the start: a member joining
// after that can only catch up by a snapshot.
func (c *testCluster) compactLogs(ctx context.Context, names []string) error {
	for _, name := range names {
		cl := c.client(name)
		if cl == nil {
			return fmt.Errorf("node %s is down", name)
		}
		if _, err := cl.Compact(ctx); err != nil {
			return fmt.Errorf("compact node %s's store: %w", name, err)
		}
	}
	var last string
	ok := waitFor(ctx, clusterTimeout, func() bool {
		last = ""
		for _, name := range names {
			st, err := c.client(name).LocalClusterStatus(ctx)
			if err != nil || st.SnapIndex == 0 {
				last = fmt.Sprintf("node %s's raft log is not compacted (%v)", name, err)
				return false
			}
		}
		return true
	})
	if !ok {
		return fmt.Errorf("within %v: %s", clusterTimeout, last)
	}
	return nil
}

// pad writes the hot-join's incompressible state through node name.
func (j *joinRun) pad(ctx context.Context, name string) error {
	buf := make([]byte, hotJoinPadBytes)
	for i := range hotJoinPadKeys {
		for k := range buf {
			buf[k] = byte(j.rng.Uint32())
		}
		cl := j.c.client(name)
		if cl == nil {
			return fmt.Errorf("node %s is down", name)
		}
		if _, err := cl.Put(ctx, fmt.Sprintf("pad:%04d", i), buf); err != nil {
			return fmt.Errorf("write pad:%04d through %s: %w", i, name, err)
		}
	}
	return nil
}

func runHotJoin(ctx context.Context, env *Env) Result {
	j, res := startJoinRun(ctx, env, func(c *testCluster, _ string) []string { return append([]string(nil), c.names...) }, hotJoinFlags...)
	if res != nil {
		return *res
	}
	r, c := j.r, j.c
	timings := map[string]float64{}
	const joiner = "n4"
	founders := append([]string(nil), c.names...)
	if err := r.step("write the padding", func() error { return j.pad(ctx, j.leader) }); err != nil {
		r.fail("%v", err)
		return j.finish(ctx, timings)
	}
	if plant != plantNoCompact {
		if err := r.step("compact the members' logs", func() error { return c.compactLogs(ctx, founders) }); err != nil {
			r.fail("the join cannot be forced to go by snapshot: %v", err)
			return j.finish(ctx, timings)
		}
	}
	via := without(founders, j.leader)[j.rng.IntN(2)]
	if err := c.addJoiner(joiner, c.apiOf(via)); err != nil {
		r.fail("%v", err)
		return j.finish(ctx, timings)
	}
	proxy, err := c.net.addLink("members", joiner, c.nodes[joiner].peer)
	if err != nil {
		r.fail("%v", err)
		return j.finish(ctx, timings)
	}
	c.nodes[joiner].advertise = proxy.Addr()
	c.nodes[joiner].extra = []string{"--snapshot-window", fmt.Sprint(hotJoinWindow)}
	sentBefore := c.snapshotBytesSent(ctx, founders)
	joinAt := time.Now()
	if err := r.step("join "+joiner, func() error { return c.start(ctx, joiner) }); err != nil {
		r.fail("%s does not start with --join-cluster %s --advertise-peer %s: %v", joiner, via, proxy.Addr(), err)
		return j.finish(ctx, timings)
	}
	var done []string // the faults injected, for the notes
	var skipped []string
	var size int64
	rl := resendLog{sentBefore: sentBefore}
	for cut := 1; cut <= 2; cut++ {
		s, ok := c.waitSync(ctx, joiner, (*joinSync).moving)
		if !ok {
			skipped = append(skipped, fmt.Sprintf("cut %d (the snapshot was %s)", cut, describe(s)))
			break
		}
		rl.started(s)
		size = s.ClusterJoin.Snapshot.Transfer.Bytes
		_, failedBefore := c.snapshotSends(ctx, founders)
		proxy.Cut()
		r.logf("cut %d of the proxy in front of %s while it received: %s", cut, joiner, s)
		after, failed := c.waitSync(ctx, joiner, func(s *joinSync) bool { return s.snapPhase() == "failed" })
		if !failed && after != nil && after.finished() {
			proxy.Heal()
			// It ended between the look and the cut: say so, claim nothing.
			skipped = append(skipped, fmt.Sprintf("cut %d (the snapshot ended just before it: %s)", cut, describe(after)))
			break
		}
		if !failed {
			proxy.Heal()
			r.fail("%s's snapshot session did not fail after cut %d of its connection (it is %s)", joiner, cut, describe(after))
			break
		}
		rl.ended(c.sendEnded(ctx, founders, failedBefore))
		proxy.Heal()
		done = append(done, fmt.Sprintf("cut %d at %d of %d bytes held", cut, s.ClusterJoin.Snapshot.Transfer.BytesDone, size))
	}
	killed := false
	if s, ok := c.waitSync(ctx, joiner, (*joinSync).moving); ok {
		rl.started(s)
		_, failedBefore := c.snapshotSends(ctx, founders)
		c.kill(joiner)
		rl.ended(c.sendEnded(ctx, founders, failedBefore))
		killed = true
		done = append(done, fmt.Sprintf("SIGKILL at %d of %d bytes held", s.ClusterJoin.Snapshot.Transfer.BytesDone, s.ClusterJoin.Snapshot.Transfer.Bytes))
		r.logf("killed %s (SIGKILL) while it received: %s", joiner, s)
	} else {
		skipped = append(skipped, fmt.Sprintf("the SIGKILL mid-install (the snapshot was %s)", describe(s)))
	}
	if killed {
		if err := r.step("committing without "+joiner, func() error { return j.committing(ctx, "after killing the joiner") }); err != nil {
			r.fail("%v", err)
		}
		if plant == plantRestartEmpty {
			os.RemoveAll(c.nodes[joiner].data)
		}
		if err := r.step("restart "+joiner, func() error { return c.start(ctx, joiner) }); err != nil {
			r.fail("%s does not start again on its directory: %v", joiner, err)
			return j.finish(ctx, timings)
		}
		// The restart resumes the join recorded in DATA/raft/JOIN: no second add.
		logPath := filepath.Join(env.Dir, joiner, fmt.Sprintf("serve-%d.log", c.nodes[joiner].starts))
		var text string
		resumed := waitFor(ctx, 10*time.Second, func() bool {
			b, _ := os.ReadFile(logPath)
			text = string(b)
			return strings.Contains(text, "resuming the join")
		})
		if !resumed || strings.Contains(text, "added to the cluster") {
			r.fail("the restarted %s did not resume its join (it should say \"resuming the join\" and not be added again; its log %s)", joiner, logPath)
		}
	}
	next := len(rl.heldStart) + 1 // the session after the last interruption
	final, _ := c.waitSync(ctx, joiner, func(s *joinSync) bool {
		if s.moving() && len(rl.heldStart) < next {
			rl.started(s)
		}
		return s.finished()
	})
	if final != nil && final.ClusterJoin != nil && final.ClusterJoin.Snapshot != nil {
		size = final.ClusterJoin.Snapshot.Transfer.Bytes
	}
	if err := r.step("promote "+joiner, func() error { return c.promoted(ctx, joiner) }); err != nil {
		r.fail("%v", err)
		logStatuses(ctx, r, c)
	} else {
		timings["promoted"] = time.Since(joinAt).Seconds()
		r.res.Recovery = time.Since(joinAt)
	}
	if err := r.step("committing with "+joiner, func() error { return j.committing(ctx, "after the promotion") }); err != nil {
		r.fail("%v", err)
	}
	sent := c.snapshotBytesSent(ctx, founders) - sentBefore
	if sent == 0 {
		r.fail("the members sent %s no snapshot bytes: it caught up from the log, so the snapshot faults were not injected", joiner)
	}
	r.note("%s joined through %s behind a proxy it advertised, by snapshot (members' logs compacted first); injected: %s; promoted %s after its first start",
		joiner, via, orDash(strings.Join(done, ", ")), secs(timings, "promoted"))
	if len(skipped) > 0 {
		r.note("not injected: %s", strings.Join(skipped, "; "))
	}
	if n := int64(len(done)); n > 0 && size > 0 {
		resent := max(0, sent-size)
		each, most := rl.perInterruption()
		within := "within one credit window each"
		if resent > n*hotJoinWindow || most > hotJoinWindow {
			within = "MORE than one credit window at an interruption"
		}
		r.note("the members wrote %d snapshot chunk bytes for a %d-byte snapshot: %d sent again over %d interruptions (%s), %s (the joiner's window is %d)",
			sent, size, resent, n, each, within, hotJoinWindow)
	}
	return j.finish(ctx, timings)
}

// resendLog measures what each interruption of the snapshot stream cost
// again: the bytes the members sent during a session (counted once the
// sender returned, see sendEnded), less what the joiner held more at the
// start of the next session than at the start of that one.
type resendLog struct {
	sentBefore int64
	heldStart  []int64 // what the joiner held as each session began
	sentEnd    []int64 // what the members had sent once each interrupted session ended
	unsure     bool    // a session's end was not seen counted
}

func (l *resendLog) started(s *joinSync) {
	t := s.ClusterJoin.Snapshot.Transfer
	l.heldStart = append(l.heldStart, t.BytesDone-t.SessionBytes)
}

// ended records what the members had sent once an interrupted session
// returned (ok: its failure was counted; else the figures are not kept).
func (l *resendLog) ended(sent int64, ok bool) {
	if !ok {
		l.unsure = true
	}
	l.sentEnd = append(l.sentEnd, sent)
}

// perInterruption describes the bytes sent again at each interruption
// (or says why it cannot), and returns the most at one (0 if unmeasured).
func (l *resendLog) perInterruption() (string, int64) {
	n := len(l.sentEnd)
	switch {
	case len(l.heldStart) != n+1:
		return "per interruption: not measured, a session was not seen moving", 0
	case l.unsure:
		return "per interruption: not measured, a sender's failure was not seen counted", 0
	}
	var parts []string
	var most int64
	prev := l.sentBefore
	for k := range n {
		again := (l.sentEnd[k] - prev) - (l.heldStart[k+1] - l.heldStart[k])
		parts = append(parts, fmt.Sprint(again))
		most = max(most, again)
		prev = l.sentEnd[k]
	}
	return strings.Join(parts, ", ") + " at each", most
}

func describe(s *joinSync) string {
	if s == nil {
		return "never seen"
	}
	return s.String()
}
