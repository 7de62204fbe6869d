package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
)

// hotJoinRunsEnv repeats TestHotJoinUnderLoad with new seeds (the long
// variant): `KVTOOL_HOTJOIN_RUNS=20 go test -run HotJoinUnderLoad ./cluster/`.
const hotJoinRunsEnv = "KVTOOL_HOTJOIN_RUNS"

// sessionLog records every snapshot session any node sends (sendHook).
type sessionLog struct {
	mu       sync.Mutex
	sessions []sentSession
}

type sentSession struct {
	from, to uint64
	res      transfer.SendResult
	err      error
}

func (l *sessionLog) install(t *testing.T) {
	h := func(from, to uint64, res transfer.SendResult, err error) {
		l.mu.Lock()
		l.sessions = append(l.sessions, sentSession{from, to, res, err})
		l.mu.Unlock()
	}
	sendHook.Store(&h)
	t.Cleanup(func() { sendHook.Store(nil) })
}

// of returns the sessions to member to that sent snapshot snap.
func (l *sessionLog) of(to uint64, snap string) []sentSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sentSession
	for _, s := range l.sessions {
		if s.to == to && s.res.Snapshot.String() == snap {
			out = append(out, s)
		}
	}
	return out
}

func (l *sessionLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := ""
	for _, x := range l.sessions {
		s += fmt.Sprintf("\n  %d->%d %s resume_from=%d chunks=%d chunk_bytes=%d size=%d err=%v", x.from, x.to, x.res.Snapshot, x.res.ResumeFrom, x.res.Chunks, x.res.ChunkBytes, x.res.Size, x.err)
	}
	return s
}

// TestHotJoinUnderLoad is issue 12's hot-join test: a 3-member cluster
// takes bank transfers (each with a request ID, retried until answered)
// while a fourth member joins on an empty directory after the log was
// compacted, so it needs a snapshot. The leader is crashed while it sends
// (the member goes on with the new leader's snapshot); the new leader's
// stream is cut once mid-way, and the joiner crashes once mid-way (its
// file system keeps only what it synced): each time the next session
// resumes, sending again at most one credit window. The member is
// promoted; all four reach the same state at the same index with every
// acknowledged transfer applied exactly once; then a founding member is
// removed and the three left keep committing.
func TestHotJoinUnderLoad(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv(hotJoinRunsEnv))
	if runs <= 1 {
		hotJoin(t, uint64(time.Now().UnixNano()))
		return
	}
	for i := range runs {
		t.Run(fmt.Sprint("run", i), func(t *testing.T) { hotJoin(t, uint64(time.Now().UnixNano())+uint64(i)) })
	}
}

// loadEvery bounds hotJoin's load to 250 transfers a second, some 40 KB
// of log: well below the snapshot's paced rate on any machine.
const loadEvery = 4 * time.Millisecond

func hotJoin(t *testing.T, seed uint64) {
	const window, chunk = 16 << 10, 4 << 10 // snapConfig's SnapshotWindow and SnapshotChunk
	c := newTestClusterConfig(t, 3, seed, func(cfg *Config) {
		snapConfig(cfg)
		cfg.SnapshotRate = 256 << 10 // so that there is a middle to cut in
		cfg.ElectionTicks = 30       // no leader change but the one the test makes, on a busy machine
	})
	var log sessionLog
	log.install(t)
	lead := c.leader()
	init := &store.Txn{}
	for i := range bankAccounts {
		init.Ops = append(init.Ops, store.Op{Kind: store.OpPut, Key: bankAcct(i), Value: []byte(strconv.Itoa(bankInitial))})
	}
	if _, err := c.propose(lead, Request{ID: "init", Txn: init}); err != nil {
		t.Fatal(err)
	}
	c.writeRandom(lead, "big/", 400, 1000, seed) // a snapshot of ~400 KiB: 1.5 s at 256 KiB/s
	c.checkpointAll(0)
	waitFor(t, "every member to compact its log", func() bool {
		for _, id := range c.ids {
			if c.node(id).n.ls.state().SnapIndex < 300 {
				return false
			}
		}
		return true
	})

	// The load: bank transfers through the founding members, until stop,
	// at most one per loadEvery between them. Without the bound a quiet
	// machine wrote the log faster than the paced snapshot (256 KiB/s)
	// could carry it: the session that resumes after the joiner's crash
	// sends the log from the checkpoint to the leader's applied index, 7 MB
	// there, which took longer than the test waits (a loaded machine wrote
	// less and passed).
	stop := make(chan struct{})
	pace := time.NewTicker(loadEvery)
	defer pace.Stop()
	var writers sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	var nAcked atomic.Int64
	for w := range 3 {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-pace.C:
				}
				id := fmt.Sprintf("w%d-%d", w, n)
				if bankSend(c, rng, id, stop, new(atomic.Pointer[powerLoss])) {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
					nAcked.Add(1)
				}
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); writers.Wait() })
	defer stopLoad()
	progressed := func(what string) { // the load goes on: a few more transfers acknowledged
		want := nAcked.Load() + 3
		waitFor(t, what, func() bool { return nAcked.Load() >= want })
	}
	progressed("the load to start")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d; sessions:%s", seed, log.String())
			if tn := c.node(4); tn != nil {
				t.Logf("joiner: %+v %+v", tn.n.InstallProgress(), tn.n.SnapshotStats())
			}
		}
	})

	// The join.
	lead = c.leader()
	if err := c.node(lead).n.AddLearner(ctxT(t), MemberRecord{Name: "n4", ID: 4}); err != nil {
		t.Fatal(err)
	}
	c.startJoinerFrom(4, nil)
	t.Cleanup(func() { c.stop(c.node(4)) }) // every incarnation (runs before c.close)
	receiving := func(what string, ok func(p InstallProgress) bool) InstallProgress {
		var p InstallProgress
		waitFor(t, what, func() bool {
			p = c.node(4).n.InstallProgress()
			x := p.Transfer
			return p.Phase == "receiving" && x.Chunks > 0 && x.ChunksDone < x.Chunks && ok(p)
		})
		return p
	}

	// 1. The leader crashes while it sends.
	p := receiving("the leader's snapshot to start", func(p InstallProgress) bool { return p.Transfer.ChunksDone >= 5 })
	lead = p.From // only a leader sends
	c.crash(lead, rand.New(rand.NewPCG(seed, 99)))
	t.Logf("crashed the leader %d at %d of %d chunks of its snapshot (term %d)", lead, p.Transfer.ChunksDone, p.Transfer.Chunks, p.Term)
	progressed("the load to go on after the leader's crash")

	// 2. The new leader's stream is cut once mid-way.
	term := p.Term
	p = receiving("a third of the new leader's snapshot", func(p InstallProgress) bool {
		return p.Term > term && p.Transfer.ChunksDone >= p.Transfer.Chunks/3
	})
	sender, cutSnap := p.From, p.Transfer.Snapshot
	if n := c.net.CutStreams(); n < 1 {
		t.Fatalf("cut %d streams, want the joiner's", n)
	}
	t.Logf("cut member %d's stream at %d of %d chunks", sender, p.Transfer.ChunksDone, p.Transfer.Chunks)

	// 3. The joiner crashes mid-way through the resumed session.
	cutAt := p.Transfer.ChunksDone
	p = receiving("the resumed session to pass half", func(p InstallProgress) bool {
		return p.From == sender && p.Transfer.Resumed && p.Transfer.ChunksDone >= max(cutAt+3, p.Transfer.Chunks/2)
	})
	c.crash(4, nil)
	t.Logf("crashed the joiner at %d of %d chunks", p.Transfer.ChunksDone, p.Transfer.Chunks)
	receiving("the session after the crash to resume", func(p InstallProgress) bool {
		return p.Transfer.Snapshot == cutSnap && p.Transfer.Resumed
	})

	// Promotion, under the load.
	waitFor(t, "the joiner to be promoted", func() bool {
		return slices.Contains(c.node(c.leader()).n.Membership().Conf.GetVoters(), 4)
	})
	progressed("the load to go on after the promotion")
	stopLoad()
	c.ids = append(c.ids, 4)
	idx := c.converged()
	checkOnce(t, c, acked)

	// Each interruption of the cut snapshot cost at most one credit
	// window: what the session before it sent beyond the chunks the
	// receiver held when the next session resumed.
	if jp := c.node(4).n.InstallProgress(); jp.Phase != "installed" {
		t.Fatalf("joiner's install: %+v", jp)
	}
	sessions := log.of(4, cutSnap)
	resent := resentPerInterruption(sessions, chunk)
	resumed := len(resent)
	for _, r := range resent {
		if r > window {
			t.Fatalf("snapshot %s: bytes sent again per interruption %v: more than a window (%d)", cutSnap, resent, window)
		}
	}
	if resumed < 2 {
		t.Fatalf("snapshot %s: %d sessions, %d resumed: want the sessions after the cut and after the joiner's crash resumed", cutSnap, len(sessions), resumed)
	}
	t.Logf("four members at index %d; %d transfers acknowledged; the cut snapshot took %d sessions; bytes sent again per interruption %v (window %d)",
		idx, len(acked), len(sessions), resent, window)

	// Remove a founding member (not the leader); the three left commit.
	lead = c.leader()
	gone := followerOf(c, lead)
	tn := c.node(gone)
	if err := c.node(lead).n.Remove(ctxT(t), gone); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tn.n.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("removed member %d did not stop", gone)
	}
	if err := tn.n.Err(); !errors.Is(err, ErrRemoved) {
		t.Fatalf("removed member %d stopped with %v, want ErrRemoved", gone, err)
	}
	c.ids = without(c.ids, gone)
	t.Cleanup(func() { c.stop(tn) })
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range 5 {
		id := fmt.Sprintf("after-%d", i)
		if !bankSend(c, rng, id, make(chan struct{}), new(atomic.Pointer[powerLoss])) {
			continue // a failed check is an answer too
		}
		acked[id] = true
	}
	after := c.converged()
	checkOnce(t, c, acked)
	if after <= idx {
		t.Fatalf("the three members left stand at %d, not past %d", after, idx)
	}
	t.Logf("removed member %d; members %v committed on to index %d", gone, c.ids, after)
}

// resentPerInterruption returns, for each session of sessions (one
// snapshot's, in order) that resumed, the chunk bytes the session before
// it sent that the receiver did not hold when it resumed: what the
// interruption cost again.
func resentPerInterruption(sessions []sentSession, chunk int64) []int64 {
	var out []int64
	for i := 1; i < len(sessions); i++ {
		prev, cur := sessions[i-1].res, sessions[i].res
		if cur.ResumeFrom == 0 {
			continue
		}
		out = append(out, prev.ChunkBytes-int64(cur.ResumeFrom-prev.ResumeFrom)*chunk)
	}
	return out
}

// TestJoinSenderCrashResumes: the leader crashes while it sends a joiner
// its snapshot, and comes back as leader before another member could
// send one (the joiner is cut off from them meanwhile): its snapshot is
// still the same (the checkpoint is durable), so the joiner resumes the
// chunks it holds instead of starting over, and the crash costs at most
// one credit window sent again. (A new leader's snapshot is another
// store's: TestHotJoinUnderLoad and TestSnapshotLeaderChange have the
// joiner start over with it.)
func TestJoinSenderCrashResumes(t *testing.T) {
	const window, chunk = 16 << 10, 4 << 10
	c := newTestClusterConfig(t, 3, 31, func(cfg *Config) {
		snapConfig(cfg)
		cfg.SnapshotRate = 256 << 10
		cfg.ElectionTicks = 30 // no leader change but the one the test makes, on a busy machine
	})
	var log sessionLog
	log.install(t)
	lead := c.leader()
	c.writeRandom(lead, "big/", 300, 1000, 31)
	c.checkpointAll(0)
	waitFor(t, "every member to compact its log", func() bool {
		for _, id := range c.ids {
			if c.node(id).n.ls.state().SnapIndex < 250 {
				return false
			}
		}
		return true
	})
	if err := c.node(lead).n.AddLearner(ctxT(t), MemberRecord{Name: "n4", ID: 4}); err != nil {
		t.Fatal(err)
	}
	c.startJoinerFrom(4, nil)
	t.Cleanup(func() { c.stop(c.node(4)) })
	t.Cleanup(func() {
		if t.Failed() {
			l := c.node(c.leader()).n
			j := c.node(4).n
			jl, jt := j.Leader()
			t.Logf("sessions:%s\njoiner %+v %+v leader %d term %d\nleader %d: %+v %+v", log.String(), j.InstallProgress(), j.SnapshotStats(), jl, jt, l.ID(), l.raft.Status().Progress[4], l.SnapshotStats())
		}
	})
	var p InstallProgress
	waitFor(t, "a third of the leader's snapshot at the joiner", func() bool {
		p = c.node(4).n.InstallProgress()
		x := p.Transfer
		return p.Phase == "receiving" && x.Chunks > 0 && x.ChunksDone >= x.Chunks/3 && x.ChunksDone < x.Chunks
	})
	snap := p.Transfer.Snapshot
	lead = p.From // only a leader sends
	others := without(c.ids, lead)
	c.net.Partition([]uint64{4}, others)
	c.crash(lead, nil)
	t.Logf("crashed the leader %d at %d of %d chunks of snapshot %s", lead, p.Transfer.ChunksDone, p.Transfer.Chunks, snap)
	// A leader of a later term than the crashed one's (until their
	// election timeout the others still name it), then the restarted
	// member made leader again.
	waitFor(t, "the restarted member to lead again", func() bool {
		cur := c.leader()
		if _, term := c.node(cur).n.Leader(); term <= p.Term {
			return false
		}
		if cur != lead {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c.node(cur).n.TransferLeader(ctx, lead)
			cancel()
			return false
		}
		return c.node(lead).n.Status().Role == "leader"
	})
	waitFor(t, "the joiner to resume the same snapshot", func() bool {
		p = c.node(4).n.InstallProgress()
		return p.From == lead && p.Transfer.Snapshot == snap && p.Transfer.Resumed || p.Phase == "installed"
	})
	c.net.Heal()
	waitFor(t, "the install", func() bool { return c.node(4).n.InstallProgress().Phase == "installed" })
	c.ids = append(c.ids, 4)
	idx := c.converged()
	p = c.node(4).n.InstallProgress()
	if p.Transfer.Snapshot != snap || p.Restarted != 0 {
		t.Fatalf("joiner installed %s (restarted %d times), want the crashed leader's %s resumed", p.Transfer.Snapshot, p.Restarted, snap)
	}
	resent := resentPerInterruption(log.of(4, snap), chunk)
	if len(resent) != 1 || resent[0] > window {
		t.Fatalf("sessions of %s: bytes sent again per interruption %v, want one interruption costing at most a window (%d)", snap, resent, window)
	}
	t.Logf("all four at index %d; the joiner resumed %s after the sender's crash, %d bytes sent again", idx, snap, resent[0])
}
