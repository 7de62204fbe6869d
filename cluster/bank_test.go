package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/store"
)

const (
	bankAccounts = 8
	bankInitial  = 1000
)

func bankAcct(i int) string { return fmt.Sprintf("acct:%02d", i) }

// bankTransfer moves amt from a to b, refusing to overdraw a, and counts
// its own applications under its ID (at most one, if deduplication works).
func bankTransfer(id string, a, b int, amt int64) *store.Txn {
	return &store.Txn{Ops: []store.Op{
		{Kind: store.OpAdd, Key: bankAcct(a), Delta: -amt},
		{Kind: store.OpAdd, Key: bankAcct(b), Delta: amt},
		{Kind: store.OpCheck, Key: bankAcct(a), Check: store.CheckMin, Min: 0},
		{Kind: store.OpAdd, Key: "once:" + id, Delta: 1},
	}}
}

// bankTotal checks one snapshot: every account present, none negative, the
// total intact (a partial transfer would break it).
func bankTotal(snap *store.Snapshot) error {
	total := int64(0)
	for i := range bankAccounts {
		v, ok := snap.Get(bankAcct(i))
		n, err := strconv.ParseInt(string(v), 10, 64)
		if !ok || err != nil || n < 0 {
			return fmt.Errorf("index %d: %s = %q", snap.Index(), bankAcct(i), v)
		}
		total += n
	}
	if total != bankAccounts*bankInitial {
		return fmt.Errorf("index %d: total %d, want %d", snap.Index(), total, bankAccounts*bankInitial)
	}
	return nil
}

// TestClusterBank runs transfers through all three members while a reader
// on each member checks every snapshot it sees, and the leader is moved,
// cut off and crashed during the run. Each transfer carries a request ID
// and is retried until it answers, so each must apply exactly once.
func TestClusterBank(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	disks := &slowDisks{}
	c := &testCluster{t: t, net: NewMemNetwork(seed), tick: 10 * time.Millisecond, nodes: map[uint64]*testNode{}, config: compactOften, wrapFS: disks.wrap}
	c.boot(3)
	for _, id := range c.ids {
		disks.set(id, 2*time.Millisecond) // so that fsyncs race the messages that must wait for them
	}
	defer func() { t.Logf("snapshots: %s", c.snapshotCounts()) }()
	lead := c.leader()
	init := &store.Txn{}
	for i := range bankAccounts {
		init.Ops = append(init.Ops, store.Op{Kind: store.OpPut, Key: bankAcct(i), Value: []byte(strconv.Itoa(bankInitial))})
	}
	initRes, err := c.propose(lead, Request{ID: "init", Txn: init})
	if err != nil {
		t.Fatal(err)
	}
	c.net.SetFaults(Faults{Drop: 0.01, Duplicate: 0.01, MaxDelay: 2 * time.Millisecond})

	stop := make(chan struct{})
	var readers, writers sync.WaitGroup
	var seen atomic.Int64
	readErr := make(chan error, len(c.ids))
	for _, id := range c.ids {
		readers.Add(1)
		go func() {
			defer readers.Done()
			readErr <- bankReader(c, id, initRes.Index, stop, &seen)
		}()
	}
	nem := newNemesis(c, seed)
	nem.disks = disks
	var mu sync.Mutex
	acked := map[string]bool{}
	var nAcked atomic.Int64
	for w := range 3 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, n)
				if bankSend(c, rng, id, stop, &nem.armed) {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
					nAcked.Add(1)
				}
			}
		}()
	}
	leaders := map[uint64]bool{}
	for round := range 12 {
		// Between faults the cluster must make progress: wait until a few
		// more transfers are acknowledged (the state), not for a time.
		want := nAcked.Load() + 5
		deadline := time.Now().Add(time.Minute)
		for nAcked.Load() < want {
			if time.Now().After(deadline) {
				for _, id := range c.ids {
					st := c.node(id).n.Status()
					st.Members = nil
					t.Logf("member %d: %+v\n  progress %+v", id, st, c.node(id).n.raft.Status().Progress)
				}
				t.Fatalf("round %d: no progress for a minute after a fault (%d transfers acknowledged); faults %v", round, nAcked.Load(), nem.log)
			}
			time.Sleep(time.Millisecond)
		}
		leaders[c.leader()] = true
		nem.leaderFault()
	}
	c.net.Heal()
	c.net.SetFaults(Faults{})
	leaders[c.leader()] = true
	close(stop)
	writers.Wait()
	readers.Wait()
	close(readErr)
	for err := range readErr {
		if err != nil {
			t.Fatalf("seed %d: %v (faults: %v)", seed, err, nem.log)
		}
	}
	c.converged()
	checkOnce(t, c, acked)
	if len(leaders) < 2 {
		t.Errorf("the leader never changed (%v)", nem.log)
	}
	t.Logf("%d transfers acknowledged, %d snapshots checked, leaders %v, faults %v", len(acked), seen.Load(), leaders, nem.log)
}

// bankSend makes one transfer through random members, retrying with the
// same ID until it is answered; it reports whether it was acknowledged
// (a failed check is an answer too, but changes nothing), and tells the
// armed power loss, if any, of an acknowledgement.
func bankSend(c *testCluster, rng *rand.Rand, id string, stop chan struct{}, armed *atomic.Pointer[powerLoss]) bool {
	a, b := rng.IntN(bankAccounts), rng.IntN(bankAccounts)
	txn := bankTransfer(id, a, b, int64(rng.IntN(300)))
	for {
		tn := c.node(c.ids[rng.IntN(len(c.ids))])
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := tn.n.Propose(ctx, Request{ID: id, Txn: txn})
		cancel()
		var ce *store.CheckError
		switch {
		case err == nil && !c.isCrashed(tn):
			if pl := armed.Load(); pl != nil {
				lead, _ := tn.n.Leader()
				pl.ack(lead == tn.id)
			}
			return true
		case errors.As(err, &ce):
			return false
		}
		select {
		case <-stop:
			return false
		default:
		}
	}
}

// bankReader checks every snapshot member id publishes, from the initial
// deposit on, until stop; it follows the member across crashes.
func bankReader(c *testCluster, id, from uint64, stop chan struct{}, seen *atomic.Int64) error {
	last := uint64(0)
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		snap := c.node(id).st.Snapshot()
		if snap.Index() < from || snap.Index() == last {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		last = snap.Index()
		seen.Add(1)
		if err := bankTotal(snap); err != nil {
			return fmt.Errorf("member %d: %w", id, err)
		}
	}
}

// checkOnce checks that on every member each transfer applied at most
// once, and each acknowledged one exactly once.
func checkOnce(t *testing.T, c *testCluster, acked map[string]bool) {
	t.Helper()
	for _, id := range c.ids {
		snap := c.node(id).st.Snapshot()
		if err := bankTotal(snap); err != nil {
			t.Fatalf("member %d at the end: %v", id, err)
		}
		snap.Scan(store.ScanOptions{Prefix: "once:"}, func(k string, v []byte) bool {
			if string(v) != "1" {
				t.Errorf("member %d: %s applied %s times", id, k, v)
			}
			return true
		})
		for xid := range acked {
			if v, _ := snap.Get("once:" + xid); string(v) != "1" {
				t.Errorf("member %d: acknowledged transfer %s applied %q times", id, xid, v)
			}
		}
	}
}

// leaderFault moves, cuts off or crashes the leader (alone, or in a power
// loss of every member), or heals.
func (n *nemesis) leaderFault() {
	c := n.c
	c.checkpointRunning() // so the log compacts and a member cut off comes back to a snapshot
	lead := n.currentLeader()
	switch n.rng.IntN(5) {
	case 0:
		to := n.others(lead)[n.rng.IntN(len(c.ids)-1)]
		c.node(lead).n.TransferLeadership(context.Background(), to)
		n.note("transfer leadership %d -> %d", lead, to)
	case 1:
		c.net.Partition([]uint64{lead}, n.others(lead))
		n.note("isolate leader %d", lead)
	case 2:
		c.crash(lead, n.rng)
		n.note("crash leader %d", lead)
	case 3:
		// a power loss of the whole cluster, transfers in flight, at the
		// instant the leader acknowledges one (or after a while): what a
		// quorum acknowledged must survive it
		c.net.Heal() // the outage ends the partition
		pl := n.powerLoss(len(c.ids), true)
		n.armed.Store(pl)
		strikeBy(pl, 20*c.tick)
		pl.restart()
		n.armed.Store(nil)
	default:
		c.net.Heal()
		n.note("heal")
	}
}
