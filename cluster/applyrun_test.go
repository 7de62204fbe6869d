package cluster

import (
	"fmt"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// runNode is a member's apply side alone (no raft): a replica store, the
// batch index and the waiters, as Start sets them up.
func runNode(t *testing.T) *Node {
	t.Helper()
	st, err := store.Open(store.Options{FS: vfs.NewMem(), Dir: "/data", Create: true, Replica: true, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Node{st: st, cfg: Config{DedupWindow: 4}, waiters: waitTable{m: map[string][]chan applyResult{}}}
}

// TestApplyRunMatchesOneByOne: committed entries applied as runs (one
// store evaluation for consecutive batches, applyCommitted) decide every
// request as applying them one at a time does: a request's copy in a
// later batch of the same run is a duplicate of the first, answered with
// its index, and changes nothing; a refused batch stays refused; IDs are
// forgotten after the same window; entries that cannot join a run (a
// request alone) split it; and both end in the same state at the same index. (The window is
// 4 IDs: entry 5 evicts the records of entries 1 and 3.)
func TestApplyRunMatchesOneByOne(t *testing.T) {
	add := func(id, key string) []byte {
		return encodeRequest(&request{id: id, dedup: true, txn: &store.Txn{Ops: []store.Op{{Kind: store.OpAdd, Key: key, Delta: 1}}}})
	}
	datas := [][]byte{
		encodeBatch([]*request{batchReq("A", "a", "1"), batchReq("B", "b", "1")}),
		nil, // a new leader's empty entry
		encodeBatch([]*request{batchReq("A", "a", "2"), batchReq("C", "c", "1")}),
		encodeBatch([]*request{batchReq("R", "r", "1"), batchReq("Q", "", "x")}), // an empty key: refused whole
		encodeBatch([]*request{batchReq("R", "r", "2"), batchReq("D", "d", "1"), batchReq("E", "e", "1")}),
		add("G", "g"), // alone: applies outside the run
		encodeBatch([]*request{batchReq("F", "f", "1"), batchReq("A", "a", "3")}), // A, B and C forgotten (entry 5)
		{batchVersion, 0}, // malformed: a no-op
		encodeBatch([]*request{batchReq("B", "b", "2"), batchReq("H", "h", "1")}),
	}
	var ents []*pb.Entry
	for i, d := range datas {
		ents = append(ents, &pb.Entry{Index: new(uint64(i + 1)), Term: new(uint64(1)), Type: pb.EntryNormal.Enum(), Data: d})
	}
	ids := []string{"A", "B", "C", "R", "Q", "D", "E", "G", "F", "H"}
	results := func(n *Node, apply func()) map[string]applyResult {
		chans := map[string]chan applyResult{}
		for _, id := range ids {
			chans[id] = n.waiters.add(id)
		}
		apply()
		got := map[string]applyResult{}
		for id, ch := range chans {
			select {
			case res := <-ch:
				got[id] = res
			default:
				t.Fatalf("request %s was not answered", id)
			}
		}
		return got
	}
	one := runNode(t)
	want := results(one, func() {
		for _, e := range ents {
			if err := one.applyEntry(e); err != nil {
				t.Fatal(err)
			}
		}
	})
	runs := runNode(t)
	got := results(runs, func() {
		if err := runs.applyCommitted(ents); err != nil {
			t.Fatal(err)
		}
	})
	for _, id := range ids {
		if describe(got[id]) != describe(want[id]) {
			t.Errorf("request %s: answered %+v in a run, %+v one by one", id, got[id], want[id])
		}
	}
	if a := want["A"]; a.index != 1 || a.dup {
		t.Errorf("A answered %+v, want index 1", a)
	}
	if q := want["Q"]; q.checkErr == nil {
		t.Errorf("Q answered %+v, want refused", q)
	}
	s1, s2 := one.st.Snapshot(), runs.st.Snapshot()
	if s1.Index() != uint64(len(ents)) || s2.Index() != s1.Index() || runs.applied != s1.Index() {
		t.Fatalf("published index %d in a run (applied %d), %d one by one, want %d", s2.Index(), runs.applied, s1.Index(), len(ents))
	}
	if s1.Hash() != s2.Hash() {
		t.Fatalf("state hash %x after runs, %x one by one", s2.Hash(), s1.Hash())
	}
	for k, v := range map[string]string{"a": "3", "b": "2", "c": "1", "r": "", "g": "1", "h": "1"} {
		if got, _ := s2.Get(k); string(got) != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

// describe says everything a result tells its proposer.
func describe(r applyResult) string {
	return fmt.Sprintf("entry %d index %d dup %t attempt %d check %v", r.entry, r.index, r.dup, r.attempt, r.checkErr)
}

// TestBatchAfterRestartFindsSingles: a request applied alone (its ID in a
// per-request dedup record) and sent again in a batch after the member
// restarted is a duplicate: the batch index built at start notes that the
// store holds such records, so the batch's apply looks its IDs up there.
func TestBatchAfterRestartFindsSingles(t *testing.T) {
	n := runNode(t)
	alone := encodeRequest(&request{id: "S", dedup: true, txn: put("s", "1")})
	if err := n.applyCommitted([]*pb.Entry{{Index: new(uint64(1)), Term: new(uint64(1)), Type: pb.EntryNormal.Enum(), Data: alone}}); err != nil {
		t.Fatal(err)
	}
	restarted := &Node{st: n.st, cfg: n.cfg, applied: n.applied, waiters: waitTable{m: map[string][]chan applyResult{}}}
	if err := restarted.batchIDs.load(restarted.st.Snapshot()); err != nil {
		t.Fatal(err)
	}
	ch := restarted.waiters.add("S")
	batch := encodeBatch([]*request{batchReq("S", "s", "2")})
	if err := restarted.applyCommitted([]*pb.Entry{{Index: new(uint64(2)), Term: new(uint64(1)), Type: pb.EntryNormal.Enum(), Data: batch}}); err != nil {
		t.Fatal(err)
	}
	if res := <-ch; !res.dup || res.index != 1 {
		t.Fatalf("the batched copy answered %s, want a duplicate of index 1", describe(res))
	}
	if v, _ := restarted.st.Snapshot().Get("s"); string(v) != "1" {
		t.Fatalf("s = %q, want 1: the copy applied again", v)
	}
}
