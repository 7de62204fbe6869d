package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// nemesis injects one fault into a test cluster per step: the fault piece
// of the workload / nemesis / checker split. Faults stay until a later
// step replaces them (a partition until the next heal or partition).
type nemesis struct {
	c   *testCluster
	rng *rand.Rand
	log []string // what it did, for a failure message
}

func newNemesis(c *testCluster, seed uint64) *nemesis {
	return &nemesis{c: c, rng: rand.New(rand.NewPCG(seed, 11))}
}

// step picks and applies one fault.
func (n *nemesis) step() {
	c := n.c
	switch k := n.rng.IntN(10); {
	case k < 2:
		c.net.Heal()
		n.note("heal")
	case k < 4: // the leader alone on one side: it must step down (CheckQuorum)
		lead := n.currentLeader()
		c.net.Partition([]uint64{lead}, n.others(lead))
		n.note("isolate leader %d", lead)
	case k < 5:
		id := c.ids[n.rng.IntN(len(c.ids))]
		c.net.Partition([]uint64{id}, n.others(id))
		n.note("isolate %d", id)
	case k < 7:
		id := c.ids[n.rng.IntN(len(c.ids))]
		c.crash(id, n.rng)
		n.note("crash %d (losing unsynced writes)", id)
	case k < 8:
		f := Faults{Drop: n.rng.Float64() * 0.1, Duplicate: n.rng.Float64() * 0.1, MaxDelay: time.Duration(n.rng.IntN(5)) * time.Millisecond}
		c.net.SetFaults(f)
		n.note("faults %+v", f)
	case k < 9:
		lead := n.currentLeader()
		to := n.others(lead)[n.rng.IntN(len(c.ids)-1)]
		c.node(lead).n.TransferLeadership(context.Background(), to)
		n.note("transfer leadership %d -> %d", lead, to)
	default:
		n.note("nothing")
	}
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
