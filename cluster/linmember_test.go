package cluster

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestLinearizabilityMembership checks histories (the workload and
// checker of TestLinearizability) recorded while the membership changes
// under them: a member joins on an empty directory and is promoted, a
// founding member is removed, another is replaced by a new learner in one
// joint change, and the leader is removed; between the changes the
// nemesis injects its faults (drops, partitions, crashes). Each change
// runs during a round of histories; the clients use every voter.
func TestLinearizabilityMembership(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	c := newTestCluster(t, 3, seed)
	c.leader()
	c.net.SetFaults(Faults{Drop: 0.02, Duplicate: 0.02, MaxDelay: 2 * time.Millisecond})
	nem := newNemesis(c, seed)
	w := &workload{c: c, start: time.Now(), deadline: 300 * time.Millisecond}
	var removed []*testNode
	t.Cleanup(func() {
		for _, tn := range removed {
			c.stop(tn)
		}
	})
	leaderNode := func() *Node { return c.node(c.leader()).n }
	remove := func(id uint64) error {
		tn := c.node(id)
		if err := leaderNode().Remove(ctxT(t), id); err != nil {
			return err
		}
		select {
		case <-tn.n.Done():
		case <-time.After(30 * time.Second):
			st, ls := tn.n.Status(), leaderNode().Status()
			var fw []string
			for _, o := range c.ids {
				if p := c.node(o).n.lastFarewell.Load(); p != nil {
					fw = append(fw, fmt.Sprintf("%d: %s", o, *p))
				}
			}
			return fmt.Errorf("removed member %d did not stop: it is %s in term %d (leader %d), commit %d, applied %d, last %d; the leader %d: term %d, commit %d; farewells %v; faults %v",
				id, st.Role, st.Term, st.Leader, st.Commit, st.AppliedIndex, st.LastIndex, ls.ID, ls.Term, ls.Commit, fw, nem.log)
		}
		removed = append(removed, tn)
		return nil
	}
	join := func(id uint64, stay bool) error {
		if err := leaderNode().AddLearner(ctxT(t), MemberRecord{Name: fmt.Sprintf("n%d", id), ID: id, StayLearner: stay}); err != nil {
			return err
		}
		c.startJoiner(id)
		return nil
	}
	steps := []struct {
		what string
		do   func() error
		ids  func([]uint64) []uint64 // the voters the clients use afterwards
	}{
		{"join 4, promoted by the leader", func() error {
			if err := join(4, false); err != nil {
				return err
			}
			waitFor(t, "4 promoted", func() bool { return slices.Contains(leaderNode().Membership().Conf.GetVoters(), 4) })
			return nil
		}, func(ids []uint64) []uint64 { return append(ids, 4) }},
		{"remove 1", func() error { return remove(1) }, func(ids []uint64) []uint64 { return without(ids, 1) }},
		{"join 5 as a learner, replace 2 by 5", func() error {
			if err := join(5, true); err != nil {
				return err
			}
			var err error // the leader refuses while 5 lags (a dropped message sends it back to probing): ask again
			waitFor(t, "the replace of 2 by 5", func() bool {
				err = leaderNode().Replace(ctxT(t), 2, 5)
				return !errors.Is(err, ErrLagging)
			})
			if err != nil {
				return err
			}
			tn := c.node(2)
			select {
			case <-tn.n.Done():
			case <-time.After(30 * time.Second):
				return fmt.Errorf("replaced member 2 did not stop")
			}
			removed = append(removed, tn)
			return nil
		}, func(ids []uint64) []uint64 { return append(without(ids, 2), 5) }},
		{"remove the leader", func() error { return remove(c.leader()) }, nil},
	}
	illegal, histories := 0, 0
	for round, step := range steps {
		for range 2 { // faults between the changes
			nem.stepNow()
			illegal += checkRound(t, w, seed, &histories, nil)
		}
		c.net.Heal()
		gone := c.leader()
		illegal += checkRound(t, w, seed, &histories, func() error { return step.do() })
		if step.ids != nil {
			c.ids = step.ids(slices.Clone(c.ids))
		} else {
			c.ids = without(c.ids, gone)
		}
		t.Logf("round %d: %s; voters now %v", round, step.what, c.node(c.ids[0]).n.Membership().Conf.GetVoters())
	}
	if illegal > 0 {
		t.Fatalf("seed %d: %d of %d histories not linearizable (faults %v)", seed, illegal, histories, nem.log)
	}
	t.Logf("%d histories, all linearizable; faults %v", histories, nem.log)
}

func without(ids []uint64, id uint64) []uint64 {
	return slices.DeleteFunc(slices.Clone(ids), func(x uint64) bool { return x == id })
}

// checkRound runs historiesPerRound histories at once, with change (if
// any) running beside them, and returns how many were not linearizable.
func checkRound(t *testing.T, w *workload, seed uint64, histories *int, change func() error) int {
	t.Helper()
	results := make([][]porcupine.Operation, historiesPerRound)
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	if change != nil {
		wg.Go(func() {
			defer func() { // a Fatal inside change (runtime.Goexit) must not leave the receive below waiting
				select {
				case errc <- errors.New("the membership change failed the test (see above)"):
				default:
				}
			}()
			errc <- change()
		})
	}
	base := *histories
	for g := range results {
		wg.Go(func() {
			h := base + g
			keys := []string{fmt.Sprintf("m%d/a", h), fmt.Sprintf("m%d/b", h)}
			results[g] = w.run(seed*100003+uint64(h), 3, stopAfter(3*roundBudget), keys)
		})
	}
	wg.Wait()
	if change != nil {
		if err := <-errc; err != nil {
			t.Fatalf("membership change: %v", err)
		}
	}
	illegal := 0
	for g, hist := range results {
		if res, info := porcupine.CheckOperationsVerbose(kvModel, hist, 10*time.Second); res == porcupine.Illegal {
			illegal++
			t.Log(describeIllegal(base+g, nil, hist, info))
		}
	}
	*histories += len(results)
	return illegal
}
