package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvtool/kvtool/vfs"
)

// nemesis injects one fault into a test cluster per step: the fault piece
// of the workload / nemesis / checker split. Faults stay until a later
// step replaces them (a partition until the next heal or partition).
// A power loss is armed by a step and strikes during the round's
// histories (powerLoss), so a history spans it: a write acknowledged
// before it and missing after it is a violation the checker sees.
type nemesis struct {
	c     *testCluster
	rng   *rand.Rand
	log   []string // what it did, for a failure message
	alone uint64   // the member the partition in place isolates (0: none)
	// powerLosses counts the power losses armed so far.
	powerLosses int
	// armed is the power loss waiting to strike, for a workload that
	// tells it of acknowledgements (TestClusterBank)
	armed atomic.Pointer[powerLoss]
	// disks, if set, are the members' disks, whose fsync times a power
	// loss draws anew (diskSpeeds)
	disks *slowDisks
}

func newNemesis(c *testCluster, seed uint64) *nemesis {
	return &nemesis{c: c, rng: rand.New(rand.NewPCG(seed, 11))}
}

// step picks and applies one fault, and returns the power loss it armed
// for the round (nil if none). A power loss of one member does not lose
// a write a quorum logged even if members acknowledge before they sync;
// one of a majority or of all three does, so those are frequent.
func (n *nemesis) step() *powerLoss {
	c := n.c
	switch k := n.rng.IntN(16); {
	case k < 2:
		c.net.Heal()
		n.alone = 0
		n.note("heal")
	case k < 3: // the leader alone on one side: it must step down (CheckQuorum)
		lead := n.currentLeader()
		n.isolate(lead)
		n.note("isolate leader %d", lead)
	case k < 4:
		id := c.ids[n.rng.IntN(len(c.ids))]
		n.isolate(id)
		n.note("isolate %d", id)
	case k < 5:
		return n.powerLoss(1, false)
	case k < 7:
		return n.powerLoss(2, false)
	case k < 9:
		return n.powerLoss(3, false)
	case k < 13: // the cluster's outage ends the partition
		c.net.Heal()
		n.alone = 0
		n.note("heal")
		return n.powerLoss(3, true)
	case k < 14: // power loss while partitioned: the majority side, or everyone
		lead := n.currentLeader()
		n.isolate(lead)
		n.note("isolate leader %d", lead)
		return n.powerLoss(2+n.rng.IntN(2), false)
	case k < 15:
		f := Faults{Drop: n.rng.Float64() * 0.1, Duplicate: n.rng.Float64() * 0.1, MaxDelay: time.Duration(n.rng.IntN(5)) * time.Millisecond}
		c.net.SetFaults(f)
		n.note("faults %+v", f)
	default:
		lead := n.currentLeader()
		to := n.others(lead)[n.rng.IntN(len(c.ids)-1)]
		c.node(lead).n.TransferLeadership(context.Background(), to)
		n.note("transfer leadership %d -> %d", lead, to)
	}
	return nil
}

// powerLoss arms a power loss of size members (the leader among them
// half the time). Half the time a victim comes back late, only once the
// others have a leader: a machine slow to boot, or the old leader whose
// log holds what the others lost. worst is the worst case for a write
// acknowledged before a quorum logged it durably: power fails for
// everyone the instant the leader acknowledges a write, the leader's
// disk is fast and the followers' slow, nothing unsynced survives, and
// the leader comes back last.
func (n *nemesis) powerLoss(size int, worst bool) *powerLoss {
	ids := slices.Clone(n.c.ids)
	n.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	lead := n.currentLeader()
	if worst || n.rng.IntN(2) == 0 {
		i := slices.Index(ids, lead)
		ids[0], ids[i] = ids[i], ids[0]
	}
	victims := slices.Sorted(slices.Values(ids[:size]))
	pl := &powerLoss{c: n.c, victims: victims, after: int64(n.rng.IntN(4)), cutDone: make(chan struct{}), back: make(chan struct{})}
	what := "all unsynced writes"
	if !worst && n.rng.IntN(2) == 0 {
		pl.rng = rand.New(rand.NewPCG(n.rng.Uint64(), 12))
		what = "a random part of the unsynced writes"
	}
	if worst || size > 1 && n.rng.IntN(2) == 0 && (n.alone == 0 || n.alone == ids[0]) {
		pl.late = ids[0]
		what += fmt.Sprintf(", %d back last", pl.late)
	}
	pl.leaderAck = worst || n.rng.IntN(2) == 0
	at := "after %d acknowledged writes"
	if pl.leaderAck {
		at = "at the leader's acknowledgement after %d acknowledged writes"
	}
	n.powerLosses++
	n.note("power loss of %v (losing %s) "+at+"%s", victims, what, pl.after, n.diskSpeeds(lead, worst || n.rng.IntN(2) == 0))
	return pl
}

// powerLoss is a correlated crash: its victims lose power at one instant,
// losing what they had not synced (testCluster.cut), then restart. It
// strikes right after the workload's after-th acknowledged write of the
// round (with leaderAck, the first a leader acknowledged from then on),
// on the client's goroutine (ack), so that raft has no time to finish
// what was acknowledged early; or when the round driver calls strike.
type powerLoss struct {
	c       *testCluster
	victims []uint64
	after   int64
	rng     *rand.Rand // for the crash clones (nil: keep only synced state); drawn only inside once
	acks    atomic.Int64
	once    sync.Once
	clones  map[uint64]*vfs.MemFS
	cutDone chan struct{} // closed once the victims are cut
	back    chan struct{} // closed once they run again (clients wait for it)
	late    uint64        // if not 0, the victim restarted once the others have a leader
	// leaderAck: strike only at a write a leader acknowledged
	leaderAck bool
}

// ack counts an acknowledged write (byLeader: answered by a member that
// led when it answered) and strikes at the after-th, or at the first
// answered by a leader from then on.
func (p *powerLoss) ack(byLeader bool) {
	if p.acks.Add(1) > p.after && (byLeader || !p.leaderAck) {
		p.strike()
	}
}

// strike cuts the victims' power (once).
func (p *powerLoss) strike() {
	p.once.Do(func() {
		p.clones = p.c.cut(p.victims, p.rng)
		close(p.cutDone)
	})
}

// restart brings the victims back on their clones, once the cut is done
// (the late one once the others have a leader).
func (p *powerLoss) restart() {
	<-p.cutDone
	if late := p.clones[p.late]; late != nil {
		delete(p.clones, p.late)
		p.c.restartCut(p.clones)
		p.c.leaderAmong(without(p.c.ids, p.late))
		p.clones = map[uint64]*vfs.MemFS{p.late: late}
	}
	p.c.restartCut(p.clones)
	close(p.back)
}

// stepNow is step with a power loss striking at once, between histories;
// it returns once the cluster has a leader again.
func (n *nemesis) stepNow() {
	if pl := n.step(); pl != nil {
		pl.strike()
		pl.restart()
		n.c.leader()
	}
}

// diskSpeeds draws each member's fsync time bound anew (if the nemesis
// has the disks): if leaderFast, lead's disk is fast and the others' slow
// (a leader whose own fsync never holds up a commit), otherwise each
// fast or slow at random. It returns them for the log.
func (n *nemesis) diskSpeeds(lead uint64, leaderFast bool) string {
	if n.disks == nil {
		return ""
	}
	fast, slow := 100*time.Microsecond, 5*time.Millisecond
	var b strings.Builder
	b.WriteString("; fsyncs up to")
	for _, id := range n.c.ids {
		d := []time.Duration{fast, time.Millisecond, slow}[n.rng.IntN(3)]
		if leaderFast && id == lead {
			d = fast
		} else if leaderFast {
			d = slow
		}
		n.disks.set(id, d)
		fmt.Fprintf(&b, " %d:%v", id, d)
	}
	return b.String()
}

// isolate partitions member id from the others.
func (n *nemesis) isolate(id uint64) {
	n.c.net.Partition([]uint64{id}, n.others(id))
	n.alone = id
}

func (n *nemesis) note(f string, args ...any) { n.log = append(n.log, fmt.Sprintf(f, args...)) }

// currentLeader is a member that believes it leads, or a random one.
func (n *nemesis) currentLeader() uint64 {
	for _, id := range n.c.ids {
		if l, _ := n.c.node(id).n.Leader(); l == id {
			return id
		}
	}
	return n.c.ids[n.rng.IntN(len(n.c.ids))]
}

func (n *nemesis) others(id uint64) []uint64 {
	var out []uint64
	for _, o := range n.c.ids {
		if o != id {
			out = append(out, o)
		}
	}
	return out
}
