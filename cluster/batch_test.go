package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

func batchReq(id, key, val string) *request {
	return &request{id: id, dedup: true, attempt: 7, txn: put(key, val)}
}

func sampleBatch() []*request {
	return []*request{
		batchReq("a", "ka", "1"),
		{id: "b", dedup: true, txn: &store.Txn{Ops: []store.Op{
			{Kind: store.OpDelete, Key: "kb"},
			{Kind: store.OpPut, Key: "kc", Value: []byte("3")},
		}}},
	}
}

func TestBatchRoundTrip(t *testing.T) {
	reqs := sampleBatch()
	b := encodeBatch(reqs)
	got, err := decodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, reqs) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, reqs)
	}
	for n := range len(b) {
		if _, err := decodeBatch(b[:n]); !errors.Is(err, errBadRequest) {
			t.Fatalf("batch cut to %d of %d bytes: %v", n, len(b), err)
		}
	}
}

// TestBatchDecodeRefuses: a batch holds 1 to maxBatchRequests deduplicated
// requests of puts and deletes, nothing after them; anything else is
// malformed (every node applies the entry as a no-op alike).
func TestBatchDecodeRefuses(t *testing.T) {
	withCheck := &request{id: "c", dedup: true, txn: &store.Txn{Ops: []store.Op{
		{Kind: store.OpCheck, Key: "k", Check: store.CheckAbsent}, {Kind: store.OpPut, Key: "k", Value: []byte("v")}}}}
	withAdd := &request{id: "d", dedup: true, txn: &store.Txn{Ops: []store.Op{{Kind: store.OpAdd, Key: "n", Delta: 1}}}}
	noID := &request{id: "e", txn: put("k", "v")}
	many := make([]*request, maxBatchRequests+1)
	for i := range many {
		many[i] = batchReq(fmt.Sprint(i), "k", "v")
	}
	nested := []byte{batchVersion, 1}
	nested = appendBytes(nested, encodeBatch(sampleBatch()))
	cases := map[string][]byte{
		"a check":         encodeBatch([]*request{batchReq("a", "k", "v"), withCheck}),
		"an add":          encodeBatch([]*request{withAdd}),
		"no client ID":    encodeBatch([]*request{noID}),
		"no requests":     {batchVersion, 0},
		"too many":        encodeBatch(many),
		"trailing bytes":  append(encodeBatch(sampleBatch()), 0),
		"a nested batch":  nested,
		"a huge count":    {batchVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"a huge length":   {batchVersion, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"a wrong version": append([]byte{4}, encodeBatch(sampleBatch())[1:]...),
	}
	for name, b := range cases {
		if reqs, err := decodeBatch(b); !errors.Is(err, errBadRequest) {
			t.Errorf("%s: %v, %v; want errBadRequest", name, reqs, err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(sampleBatch()))
	f.Add([]byte{batchVersion, 1, 3, 1, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		reqs, err := decodeBatch(b)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("error does not wrap errBadRequest: %v", err)
			}
			return
		}
		again := encodeBatch(reqs)
		r2, err := decodeBatch(again)
		if err != nil || !bytes.Equal(encodeBatch(r2), again) {
			t.Fatalf("re-encoding what was decoded: %v", err)
		}
		// What was decoded shares no memory with the entry, whose
		// buffer raft or the log may reuse (every member decodes every
		// request it applies, and the store keeps the values).
		for i := range b {
			b[i] ^= 0xff
		}
		if !bytes.Equal(encodeBatch(reqs), again) {
			t.Fatal("the decoded requests changed with the bytes they were decoded from")
		}
	})
}

// TestDecodeBatchNoAlias: FuzzDecodeBatch's aliasing check on a sample
// batch, for every run (fails when a key, value or ID points into the
// entry's bytes).
func TestDecodeBatchNoAlias(t *testing.T) {
	b := encodeBatch(sampleBatch())
	reqs, err := decodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	want := encodeBatch(reqs)
	for i := range b {
		b[i] ^= 0xff
	}
	if !bytes.Equal(encodeBatch(reqs), want) {
		t.Fatal("the decoded requests changed with the bytes they were decoded from")
	}
}

// proposeEntry proposes data as one raft entry on node id and waits until
// every member applied it.
func (c *testCluster) proposeEntry(id uint64, data []byte) {
	c.t.Helper()
	c.proposeEntryOn(id, data)
	c.converged()
}

// TestClusterBatchDedup: each request of a batch entry of version 2 (as
// earlier builds proposed them) applies at most once: a copy in the same
// batch, a copy in a later batch and an ID applied alone are duplicates;
// an ID is forgotten only after DedupWindow more batched requests (here
// 4), also when one batch is larger than the window; a malformed batch
// changes nothing anywhere.
func TestClusterBatchDedup(t *testing.T) {
	c := newTestClusterConfig(t, 3, 11, func(cfg *Config) { cfg.DedupWindow = 4 })
	lead := c.leader()
	if _, err := c.propose(lead, Request{ID: "alone", Txn: &store.Txn{Ops: []store.Op{{Kind: store.OpAdd, Key: "alone", Delta: 1}}}}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		batch []*request
		want  map[string]string // key -> value on every member after the batch ("" absent)
	}{
		{[]*request{batchReq("A", "a", "1"), batchReq("B", "b", "1"), batchReq("A", "a", "2"), batchReq("alone", "alone", "x")},
			map[string]string{"a": "1", "b": "1", "alone": "1"}},
		{[]*request{batchReq("A", "a", "3"), batchReq("C", "c", "1")},
			map[string]string{"a": "1", "c": "1"}},
		// Batched so far: A, B, C (slots 0-2). D and E take slots 3 and 0:
		// A is forgotten, B is not.
		{[]*request{batchReq("D", "d", "1"), batchReq("E", "e", "1")}, map[string]string{"d": "1", "e": "1"}},
		{[]*request{batchReq("A", "a", "4"), batchReq("B", "b", "4")}, map[string]string{"a": "4", "b": "1"}},
		// Six requests in a window of four: F and G are forgotten within
		// the batch (by J and K), K is remembered.
		{[]*request{batchReq("F", "f", "1"), batchReq("G", "g", "1"), batchReq("H", "h", "1"),
			batchReq("I", "i", "1"), batchReq("J", "j", "1"), batchReq("K", "k", "1")}, nil},
		{[]*request{batchReq("F", "f", "2"), batchReq("K", "k", "2")}, map[string]string{"f": "2", "k": "1"}},
	}
	for i, s := range steps {
		c.proposeEntry(lead, encodeBatchVersion(batchVersionSlots, s.batch))
		for _, id := range c.ids {
			snap := c.node(id).st.Snapshot()
			for k, want := range s.want {
				if got, _ := snap.Get(k); string(got) != want {
					t.Fatalf("step %d, node %x: %s = %q, want %q", i, id, k, got, want)
				}
			}
		}
	}
	// A malformed batch (an add inside) is a no-op on every member.
	before := c.node(lead).st.Snapshot().Hash()
	bad := encodeBatchVersion(batchVersionSlots, []*request{batchReq("Z", "z", "1"), {id: "Y", dedup: true, txn: &store.Txn{Ops: []store.Op{{Kind: store.OpAdd, Key: "y", Delta: 1}}}}})
	c.proposeEntry(lead, bad)
	if c.node(lead).st.Snapshot().Hash() != before {
		t.Fatal("a malformed batch changed the state")
	}
	// The batch slot table holds at most DedupWindow IDs.
	for _, id := range c.ids {
		slots, ids := 0, 0
		c.node(id).st.Snapshot().Scan(store.ScanOptions{Start: DedupPrefix}, func(k string, _ []byte) bool {
			switch {
			case strings.HasPrefix(k, DedupPrefix+"seq/"):
				slots++
			case strings.HasPrefix(k, DedupPrefix+"id/"):
				ids++
			}
			return strings.HasPrefix(k, DedupPrefix)
		})
		if slots != 4 || ids != 5 { // 4 batched IDs and "alone"
			t.Fatalf("node %x: %d batch slots and %d recorded IDs, want 4 and 5", id, slots, ids)
		}
	}
}

// TestClusterBatchedProposals: concurrent plain writes with IDs on every
// member (merged into batches) each apply once and are answered with
// their own index; a retry of each, with another value, is a duplicate
// answered with the first index, and changes nothing.
func TestClusterBatchedProposals(t *testing.T) {
	c := newTestCluster(t, 3, 13)
	c.leader()
	const writers = 48
	first := make([]Result, writers)
	run := func(val string, check func(i int, res Result, err error)) {
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				res, err := c.propose(c.ids[i%len(c.ids)], Request{ID: fmt.Sprint("w", i), Txn: put(fmt.Sprint("k", i), val)})
				check(i, res, err)
			})
		}
		wg.Wait()
	}
	var mu sync.Mutex
	run("1", func(i int, res Result, err error) {
		if err != nil || res.Duplicate {
			t.Errorf("writer %d: %+v, %v", i, res, err)
		}
		mu.Lock()
		first[i] = res
		mu.Unlock()
	})
	c.converged()
	run("2", func(i int, res Result, err error) {
		if err != nil || !res.Duplicate || res.Index != first[i].Index {
			t.Errorf("retry of writer %d: %+v, %v; want a duplicate of %d", i, res, err, first[i].Index)
		}
	})
	c.converged()
	entries := map[uint64]bool{}
	for i := range writers {
		entries[first[i].Index] = true
		for _, id := range c.ids {
			snap := c.node(id).st.Snapshot()
			if v, _ := snap.Get(fmt.Sprint("k", i)); string(v) != "1" {
				t.Fatalf("node %x: k%d = %q, want 1", id, i, v)
			}
		}
	}
	t.Logf("%d writes in %d entries", writers, len(entries))
}

// TestClusterFollowerForwardsWhileSyncing: a write made on a follower
// reaches the leader (and commits there) while the follower's Ready loop
// waits for an fsync of its raft log: the proposal does not wait for the
// follower's next Ready (it sat behind that fsync on every write made on a
// follower).
func TestClusterFollowerForwardsWhileSyncing(t *testing.T) {
	var blocked atomic.Uint64 // the member whose raft log fsyncs wait for release
	var waiting atomic.Bool
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	wrap := func(id uint64, fs vfs.FS) vfs.FS {
		return vfs.NewErrorFS(fs, vfs.InjectorFunc(func(op vfs.Op, path string) error {
			if op == vfs.OpSync && blocked.Load() == id && strings.Contains(path, "/"+RaftDir+"/") {
				waiting.Store(true)
				<-release
			}
			return nil
		}))
	}
	c := newTestClusterFS(t, 3, 17, nil, wrap)
	lead := c.leader()
	f := c.ids[0]
	if f == lead {
		f = c.ids[1]
	}
	// f must know the leader before its fsyncs wait: converged holds at
	// once on a fresh cluster, and a follower still syncing its vote when
	// the fsyncs start waiting never hears who leads (CI run 75 failed so).
	if _, err := c.propose(lead, Request{Txn: put("warm", "1")}); err != nil {
		t.Fatal(err)
	}
	c.converged()
	waitFor(t, "the follower to know the leader", func() bool { l, _ := c.node(f).n.Leader(); return l == lead })
	blocked.Store(f)
	if _, err := c.propose(lead, Request{Txn: put("a", "1")}); err != nil { // f's Ready that logs it waits in its fsync
		t.Fatal(err)
	}
	waitFor(t, "the follower's fsync to wait", waiting.Load)
	done := make(chan error, 1)
	go func() {
		_, err := c.propose(f, Request{ID: "from-f", Txn: put("b", "1")})
		done <- err
	}()
	if !eventually(func() bool { _, ok := c.node(lead).st.Snapshot().Get("b"); return ok }) {
		t.Error("the leader did not apply a write made on a follower while the follower's fsync waited")
	}
	blocked.Store(0)
	unblock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.converged()
}

// TestClusterBatchRefusedStaysRefused: a batch the store refuses as a
// whole (here an empty key, which a hostile or buggy proposer could send)
// changes nothing but records each of its IDs as decided (aborted), so a
// later copy of one of them does not apply either; for batches of both
// versions.
func TestClusterBatchRefusedStaysRefused(t *testing.T) {
	c := newTestCluster(t, 3, 19)
	lead := c.leader()
	for _, v := range []byte{batchVersionSlots, batchVersion} {
		p := fmt.Sprint("P", v)
		c.proposeEntry(lead, encodeBatchVersion(v, []*request{batchReq(p, p, "1"), batchReq(fmt.Sprint("Q", v), "", "x")}))
		c.proposeEntry(lead, encodeBatchVersion(v, []*request{batchReq(p, p, "2")}))
		for _, id := range c.ids {
			snap := c.node(id).st.Snapshot()
			if v, ok := snap.Get(p); ok {
				t.Fatalf("node %x: %s = %q: a request of a refused batch applied later", id, p, v)
			}
			if v, _ := c.node(id).n.decided(p); !strings.HasPrefix(string(v), abortedMark) {
				t.Fatalf("node %x: %s recorded as %q, want it aborted", id, p, v)
			}
		}
	}
}

// TestClusterBatchRecords: each request of a batch entry (version 3, one
// record of IDs per batch) applies at most once: a copy in the same batch,
// a copy in a later batch and an ID applied alone are duplicates; a
// batch's IDs are forgotten only once later batches applied DedupWindow
// requests (here 4), a batch larger than the window is remembered whole;
// a member restarted in between (the index in memory built again from
// the store) decides alike; a malformed batch changes nothing anywhere.
func TestClusterBatchRecords(t *testing.T) {
	c := newTestClusterConfig(t, 3, 23, func(cfg *Config) { cfg.DedupWindow = 4 })
	lead := c.leader()
	if _, err := c.propose(lead, Request{ID: "alone", Txn: &store.Txn{Ops: []store.Op{{Kind: store.OpAdd, Key: "alone", Delta: 1}}}}); err != nil {
		t.Fatal(err)
	}
	f := followerOf(c, lead)
	steps := []struct {
		batch   []*request
		want    map[string]string // key -> value on every member after the batch ("" absent)
		restart bool              // restart a follower after this step
	}{
		{[]*request{batchReq("A", "a", "1"), batchReq("B", "b", "1"), batchReq("A", "a", "2"), batchReq("alone", "alone", "x")},
			map[string]string{"a": "1", "b": "1", "alone": "1"}, false},
		{[]*request{batchReq("A", "a", "3"), batchReq("C", "c", "1")}, map[string]string{"a": "1", "c": "1"}, true},
		// Records {A B} {C} {D E}: three IDs after A and B, who stay.
		{[]*request{batchReq("D", "d", "1"), batchReq("E", "e", "1")}, map[string]string{"d": "1", "e": "1"}, false},
		{[]*request{batchReq("A", "a", "4"), batchReq("B", "b", "4")}, map[string]string{"a": "1", "b": "1"}, false},
		// F makes four after {A B}: that record goes.
		{[]*request{batchReq("F", "f", "1")}, map[string]string{"f": "1"}, true},
		{[]*request{batchReq("A", "a", "6"), batchReq("C", "c", "6")}, map[string]string{"a": "6", "c": "1"}, false},
		// Six in a window of four: every older record goes, this one
		// stays whole.
		{[]*request{batchReq("G", "g", "1"), batchReq("H", "h", "1"), batchReq("I", "i", "1"),
			batchReq("J", "j", "1"), batchReq("K", "k", "1"), batchReq("L", "l", "1")}, nil, true},
		{[]*request{batchReq("G", "g", "2"), batchReq("L", "l", "2"), batchReq("D", "d", "2")},
			map[string]string{"g": "1", "l": "1", "d": "2"}, false},
	}
	for i, s := range steps {
		c.proposeEntry(lead, encodeBatch(s.batch))
		for _, id := range c.ids {
			snap := c.node(id).st.Snapshot()
			for k, want := range s.want {
				if got, _ := snap.Get(k); string(got) != want {
					t.Fatalf("step %d, node %x: %s = %q, want %q", i, id, k, got, want)
				}
			}
		}
		if s.restart {
			c.stop(c.node(f))
			if err := c.restart(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := c.node(lead).st.Snapshot().Hash()
	bad := encodeBatch([]*request{batchReq("Z", "z", "1"), {id: "Y", dedup: true, txn: &store.Txn{Ops: []store.Op{{Kind: store.OpAdd, Key: "y", Delta: 1}}}}})
	c.proposeEntry(lead, bad)
	if c.node(lead).st.Snapshot().Hash() != before {
		t.Fatal("a malformed batch changed the state")
	}
	// Records {G..L} and {D}; no per-request records but "alone"'s.
	for _, id := range c.ids {
		recs, ids := 0, 0
		c.node(id).st.Snapshot().Scan(store.ScanOptions{Prefix: DedupPrefix}, func(k string, _ []byte) bool {
			switch {
			case strings.HasPrefix(k, batchRecordPrefix):
				recs++
			case strings.HasPrefix(k, DedupPrefix+"id/"), strings.HasPrefix(k, DedupPrefix+"seq"):
				ids++
			}
			return true
		})
		if recs != 2 || ids != 1 {
			t.Fatalf("node %x: %d batch records and %d per-request records, want 2 and 1", id, recs, ids)
		}
	}
}

// TestClusterBatchRecordsAfterSnapshot: a member that catches up through
// a snapshot install knows the batch records the snapshot holds (the
// index in memory is built again from the installed store): a copy of a
// batched request proposed after the install is a duplicate there too,
// and every member ends with the same state.
func TestClusterBatchRecordsAfterSnapshot(t *testing.T) {
	c := newTestClusterConfig(t, 3, 29, snapConfig)
	lead := c.leader()
	c.converged()
	f := followerOf(c, lead)
	behind := c.node(f).st.Snapshot().Index()
	c.net.Isolate(f)
	c.proposeEntryOn(lead, encodeBatch([]*request{batchReq("S1", "s", "1"), batchReq("S2", "t", "1")}))
	c.writeKeys(lead, "during/", 60, 100)
	c.checkpointAll(f)
	waitFor(t, "the leader to compact past the isolated follower", func() bool {
		return c.node(lead).n.ls.state().SnapIndex > behind+10
	})
	c.net.Rejoin(f)
	c.converged()
	waitFor(t, "the install to finish", func() bool { return c.node(f).n.InstallProgress().Phase == "installed" })
	c.proposeEntry(lead, encodeBatch([]*request{batchReq("S1", "s", "2"), batchReq("S3", "u", "1")}))
	for _, id := range c.ids {
		snap := c.node(id).st.Snapshot()
		if v, _ := snap.Get("s"); string(v) != "1" {
			t.Fatalf("node %x: s = %q, want 1 (a copy of a batched request applied twice)", id, v)
		}
		if v, _ := snap.Get("u"); string(v) != "1" {
			t.Fatalf("node %x: u = %q, want 1", id, v)
		}
	}
	if h, fh := c.node(lead).st.Snapshot().Hash(), c.node(f).st.Snapshot().Hash(); h != fh {
		t.Fatalf("the member that installed a snapshot has state %x, the leader %x", fh, h)
	}
}

// proposeEntryOn proposes data as one raft entry on node id and waits
// until that node applied it (the others may be cut off).
func (c *testCluster) proposeEntryOn(id uint64, data []byte) {
	c.t.Helper()
	n := c.node(id).n
	before := n.st.Snapshot().Index()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.raft.Propose(ctx, data); err != nil {
		c.t.Fatal(err)
	}
	waitFor(c.t, "the entry to apply", func() bool { return n.st.Snapshot().Index() > before })
}

// TestBatchRecordDecode: a batch record decodes to what was encoded, and
// hostile bytes are an error naming the key, never a panic.
func TestBatchRecordDecode(t *testing.T) {
	reqs := sampleBatch()
	key := batchRecordKey(0x1234)
	rec, err := decodeBatchRecord(key, encodeBatchRecord(batchRecordAborted, reqs))
	if err != nil || rec.index != 0x1234 || !rec.aborted || len(rec.ids) != len(reqs) || rec.ids[0] != reqs[0].id {
		t.Fatalf("decoded %+v, %v", rec, err)
	}
	good := encodeBatchRecord(0, reqs)
	for name, c := range map[string]struct {
		key string
		v   []byte
	}{
		"no index":       {batchRecordPrefix + "xyz", good},
		"a short index":  {batchRecordPrefix + "12", good},
		"empty":          {key, nil},
		"unknown flags":  {key, append([]byte{2}, good[1:]...)},
		"no IDs":         {key, []byte{0, 0}},
		"too many IDs":   {key, []byte{0, 0xff, 0xff, 0x03}},
		"an ID too long": {key, append([]byte{0, 1, MaxRequestID + 1}, make([]byte, MaxRequestID+1)...)},
		"cut short":      {key, good[:len(good)-1]},
		"trailing bytes": {key, append(good, 0)},
	} {
		if _, err := decodeBatchRecord(c.key, c.v); err == nil || !strings.Contains(err.Error(), strconv.Quote(c.key)) {
			t.Errorf("%s: %v; want an error naming %q", name, err, c.key)
		}
	}
}

func FuzzDecodeBatchRecord(f *testing.F) {
	f.Add(encodeBatchRecord(0, sampleBatch()))
	f.Add([]byte{1, 1, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, err := decodeBatchRecord(batchRecordKey(7), v)
		if err != nil {
			return
		}
		reqs := make([]*request, len(rec.ids))
		for i, id := range rec.ids {
			reqs[i] = &request{id: id}
		}
		flags := byte(0)
		if rec.aborted {
			flags = batchRecordAborted
		}
		again := encodeBatchRecord(flags, reqs)
		rec2, err := decodeBatchRecord(batchRecordKey(7), again)
		if err != nil || !reflect.DeepEqual(rec, rec2) {
			t.Fatalf("%x decoded to %+v, which encodes as %x, decoded to %+v, %v", v, rec, again, rec2, err)
		}
	})
}

// TestClusterStopsAtNewerEntry: a committed entry in a format newer than
// this build knows (as a member running a newer kvtool would propose)
// stops each member that learns it is committed before it applies
// anything at that index, naming the version, instead of applying it as a
// no-op and diverging from the members that understand it. A majority
// always learns it (the leader and a follower that acknowledged it); the
// last member may not, when those two stop before their next message
// carries the commit, and is then left without a quorum: it applies
// nothing either.
func TestClusterStopsAtNewerEntry(t *testing.T) {
	c := newTestCluster(t, 3, 23)
	lead := c.leader()
	if _, err := c.propose(lead, Request{Txn: put("before", "v")}); err != nil {
		t.Fatal(err)
	}
	before := c.converged()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.node(lead).n.raft.Propose(ctx, append([]byte{maxEntryVersion + 1}, "from a newer build"...)); err != nil {
		t.Fatal(err)
	}
	stopped := func() int {
		k := 0
		for _, id := range c.ids {
			if c.node(id).n.Err() != nil {
				k++
			}
		}
		return k
	}
	waitFor(t, "a majority of the members to stop at the newer entry", func() bool { return stopped() > len(c.ids)/2 })
	for _, id := range c.ids {
		n := c.node(id).n
		if err := n.Err(); err != nil && (!errors.Is(err, ErrNewerEntry) || !strings.Contains(err.Error(), fmt.Sprintf("version %d", maxEntryVersion+1))) {
			t.Fatalf("member %x: %v, want ErrNewerEntry naming version %d", id, err, maxEntryVersion+1)
		}
		if got := c.node(id).st.Snapshot().Index(); got != before {
			t.Fatalf("member %x applied up to %d, want %d: the newer entry was applied", id, got, before)
		}
	}
}
