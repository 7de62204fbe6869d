package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// orderLog records, in order, the raft log's fsyncs and the messages
// handed to the transport.
type orderLog struct {
	mu     sync.Mutex
	events []string
}

func (o *orderLog) add(ev string) {
	o.mu.Lock()
	o.events = append(o.events, ev)
	o.mu.Unlock()
}

func (o *orderLog) Handle(Handler) {}
func (o *orderLog) Close() error   { return nil }
func (o *orderLog) Send(msgs []*pb.Message) {
	for _, m := range msgs {
		o.add(m.GetType().String())
	}
}

// advanceOnly is the raft handleReady needs here: a RawNode over empty
// storage that accepted no Ready, so its Advance does nothing.
func advanceOnly(t *testing.T) *raftNode {
	r, err := newRaftNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: raft.NewMemoryStorage(),
		MaxInflightMsgs: 256, Logger: quietLogger{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestFollowerForwardsBeforeFsync: a follower's Ready that both persists
// entries and forwards a client's proposal (and a ReadIndex request) to the
// leader sends the forwards before the fsync, which they do not depend on
// (it sat on the path of every write made on a follower), and its
// acknowledgement of the entries only after it.
func TestFollowerForwardsBeforeFsync(t *testing.T) {
	log := &orderLog{}
	var logging atomic.Bool
	fs := vfs.NewErrorFS(vfs.NewMem(), vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if _, seg := format.ParseSegmentName(filepath.Base(path)); seg && op == vfs.OpSync && logging.Load() {
			log.add("fsync") // of a log segment (not of a spare being prepared)
		}
		return nil
	}))
	n := &Node{ls: newLogStore(t, fs, 1<<20), tr: log, raft: advanceOnly(t)}
	defer n.ls.close()
	logging.Store(true)
	msg := func(t pb.MessageType) *pb.Message {
		return &pb.Message{Type: t.Enum(), From: new(uint64(1)), To: new(uint64(2))}
	}
	rd := raft.Ready{
		Entries:  ents(1, 3, 1),
		Messages: []*pb.Message{msg(pb.MsgAppResp), msg(pb.MsgProp), msg(pb.MsgReadIndex)},
	}
	if err := n.handleReady(rd); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	sync := slices.Index(log.events, "fsync")
	at := func(ev string) int { return slices.Index(log.events, ev) }
	if sync < 0 || at("MsgProp") < 0 || at("MsgProp") > sync || at("MsgReadIndex") > sync || at("MsgAppResp") < sync {
		t.Fatalf("events %v: want MsgProp and MsgReadIndex before the fsync, MsgAppResp after it", log.events)
	}
}

// TestLoopWritesItsLog: the Ready loop writes and syncs a Ready's
// entries on its own goroutine (segment.Options.CallerFlush), saving the
// two goroutine wake-ups of a hand-off to the log's flusher and back;
// only a Ready that also has durable committed entries to apply hands the
// write to the flusher, so that the fsync runs while they apply. Each
// fsync of a segment records whether it ran in handleReady or in the
// flusher's loop.
func TestLoopWritesItsLog(t *testing.T) {
	var mu sync.Mutex
	var where []string
	fs := vfs.NewErrorFS(vfs.NewMem(), vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if segmentSync(op, path) {
			buf := make([]byte, 64<<10)
			stack := string(buf[:runtime.Stack(buf, false)])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case strings.Contains(stack, "cluster.(*Node).handleReady"):
				where = append(where, "loop")
			case strings.Contains(stack, "segment.(*Log).flushLoop"):
				where = append(where, "flusher")
			default:
				where = append(where, "elsewhere")
			}
		}
		return nil
	}))
	st, err := store.Open(store.Options{FS: vfs.NewMem(), Dir: "/data", Create: true, Replica: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := &Node{ls: newLogStore(t, fs, 1<<20), st: st, tr: &orderLog{}, raft: advanceOnly(t),
		cfg: Config{DedupWindow: DefaultDedupWindow}, waiters: waitTable{m: map[string][]chan applyResult{}}}
	defer n.ls.close()
	entries := func(from, to uint64) []*pb.Entry {
		var out []*pb.Entry
		for i := from; i <= to; i++ {
			data := encodeBatch([]*request{batchReq(fmt.Sprint("id", i), fmt.Sprint("k", i), "v")})
			out = append(out, &pb.Entry{Index: new(i), Term: new(uint64(1)), Type: pb.EntryNormal.Enum(), Data: data})
		}
		return out
	}
	for _, rd := range []raft.Ready{
		{Entries: entries(1, 3)},                                  // nothing to apply: the loop writes
		{Entries: entries(4, 5), CommittedEntries: entries(1, 3)}, // 1-3 apply during the flusher's fsync
		{Entries: entries(6, 6)},
		{CommittedEntries: entries(4, 6)}, // nothing to write
	} {
		if err := n.handleReady(rd); err != nil {
			t.Fatal(err)
		}
	}
	if got := st.Snapshot().Index(); got != 6 {
		t.Fatalf("the store applied through %d, want 6", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"loop", "flusher", "loop"}; !slices.Equal(where, want) {
		t.Fatalf("the raft log's fsyncs ran in %v, want %v", where, want)
	}
}

// TestCommittedAppliedBeforeFsync: a Ready's committed entries that the
// raft log already holds durably are applied while the Ready's new
// entries are written, not after their fsync (which every write's commit
// would otherwise wait for on every node); a committed entry of the Ready
// itself is applied only once its fsync succeeded. Here that fsync fails:
// entries 1-3 (durable before) are applied, 4 and 5 (this Ready's) are not.
func TestCommittedAppliedBeforeFsync(t *testing.T) {
	var failSync atomic.Bool
	fs := vfs.NewErrorFS(vfs.NewMem(), vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if _, seg := format.ParseSegmentName(filepath.Base(path)); seg && op == vfs.OpSync && failSync.Load() {
			return errors.New("injected fsync failure")
		}
		return nil
	}))
	st, err := store.Open(store.Options{FS: vfs.NewMem(), Dir: "/data", Create: true, Replica: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := &Node{ls: newLogStore(t, fs, 1<<20), st: st, tr: &orderLog{}, raft: advanceOnly(t),
		cfg: Config{DedupWindow: DefaultDedupWindow}, waiters: waitTable{m: map[string][]chan applyResult{}}}
	defer n.ls.close()
	entries := func(from, to uint64) []*pb.Entry {
		var out []*pb.Entry
		for i := from; i <= to; i++ {
			data := encodeBatch([]*request{batchReq(fmt.Sprint("id", i), fmt.Sprint("k", i), "v")})
			out = append(out, &pb.Entry{Index: new(i), Term: new(uint64(1)), Type: pb.EntryNormal.Enum(), Data: data})
		}
		return out
	}
	if err := n.handleReady(raft.Ready{Entries: entries(1, 3)}); err != nil {
		t.Fatal(err)
	}
	failSync.Store(true)
	err = n.handleReady(raft.Ready{Entries: entries(4, 5), CommittedEntries: entries(1, 5)})
	if err == nil {
		t.Fatal("a Ready whose fsync failed succeeded")
	}
	if got := st.Snapshot().Index(); got != 3 {
		t.Fatalf("store applied through %d after the fsync of entries 4-5 failed, want 3 (1-3 were durable before)", got)
	}
}

// segmentSync reports whether op on path is the fsync of a log segment
// (not of a spare being prepared).
func segmentSync(op vfs.Op, path string) bool {
	_, seg := format.ParseSegmentName(filepath.Base(path))
	return seg && op == vfs.OpSync
}

// syncGate holds the raft log fsyncs of the members whose hold is set:
// each such fsync blocks (counted in held) until release.
type syncGate struct {
	hold [4]atomic.Bool
	held atomic.Int64
	gate chan struct{}
	once sync.Once
}

func (g *syncGate) release() { g.once.Do(func() { close(g.gate) }) }

// newSyncGateCluster is a three-member cluster whose raft log fsyncs g
// can hold; the test's cleanup releases them before the cluster closes.
func newSyncGateCluster(t *testing.T, seed uint64) (*testCluster, *syncGate) {
	g := &syncGate{gate: make(chan struct{})}
	c := newTestClusterFS(t, 3, seed, nil, func(id uint64, fs vfs.FS) vfs.FS {
		return vfs.NewErrorFS(fs, vfs.InjectorFunc(func(op vfs.Op, path string) error {
			if g.hold[id].Load() && segmentSync(op, path) && strings.Contains(path, "/raft/") {
				g.held.Add(1)
				<-g.gate
			}
			return nil
		}))
	})
	t.Cleanup(g.release) // runs before the cluster's close, registered earlier
	return c, g
}

// TestNoCommitWhileFollowersSync: while neither follower's raft log fsync
// completes, the leader commits nothing: a follower acknowledges entries
// only once they are durable (with asynchronous storage writes the ack is
// a response of the log append, delivered after its fsync). The leader's
// commit is checked after each follower has taken 20 more messages
// (heartbeats, or once the leader stepped down for want of answers, its
// pre-votes), by when an early ack would have committed the write. Then the fsyncs go on and the write is acknowledged.
func TestNoCommitWhileFollowersSync(t *testing.T) {
	c, g := newSyncGateCluster(t, 11)
	hold, held, release := &g.hold, &g.held, g.release
	lead := c.leader()
	if _, err := c.propose(lead, Request{Txn: put("before", "v")}); err != nil {
		t.Fatal(err)
	}
	c.converged()
	var followers []uint64
	for _, id := range c.ids {
		if id != lead {
			followers = append(followers, id)
			hold[id].Store(true)
		}
	}
	ln := c.node(lead).n
	commit := ln.raft.Status().GetCommit()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := ln.Propose(ctx, Request{Txn: put("k", "v")})
		done <- err
	}()
	waitFor(t, "both followers' fsyncs of the write held", func() bool { return held.Load() >= 2 })
	var seen [4]int64
	for _, id := range followers {
		seen[id] = c.node(id).n.stats.received.Load()
	}
	waitFor(t, "20 more messages on each follower", func() bool {
		for _, id := range followers {
			if c.node(id).n.stats.received.Load() < seen[id]+20 {
				return false
			}
		}
		return true
	})
	if got := ln.raft.Status().GetCommit(); got != commit {
		t.Fatalf("the leader committed up to %d (from %d) while no follower's fsync had completed", got, commit)
	}
	select {
	case err := <-done:
		t.Fatalf("the write returned (%v) while no follower's fsync had completed", err)
	default:
	}
	for _, id := range followers {
		hold[id].Store(false)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestStalledLeaderFsyncHandsOver: the Ready loop writes and syncs the
// raft log itself and steps nothing meanwhile, so a leader whose fsync
// hangs falls silent (as it did before: what its steps and ticks made raft
// send waited for the next Ready anyway); the other two elect a leader and
// go on committing writes while the old leader's fsync is still held, and
// once it is let go, all three converge.
func TestStalledLeaderFsyncHandsOver(t *testing.T) {
	c, g := newSyncGateCluster(t, 12)
	lead := c.leader()
	if _, err := c.propose(lead, Request{Txn: put("before", "v")}); err != nil {
		t.Fatal(err)
	}
	c.converged()
	var others []uint64
	for _, id := range c.ids {
		if id != lead {
			others = append(others, id)
		}
	}
	g.hold[lead].Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := c.node(lead).n.Propose(ctxT(t), Request{Txn: put("k", "stalled")})
		done <- err
	}()
	waitFor(t, "the leader's fsync of the write held", func() bool { return g.held.Load() >= 1 })
	next := c.leaderAmong(others)
	if _, err := c.propose(next, Request{Txn: put("k2", "v")}); err != nil {
		t.Fatalf("a write through the new leader %x while the old one's fsync is held: %v", next, err)
	}
	if !g.hold[lead].Load() || g.held.Load() < 1 {
		t.Fatal("the old leader's fsync was let go before the write")
	}
	g.hold[lead].Store(false)
	g.release()
	<-done // committed by the new leader, or refused for the leader change: either is right
	c.converged()
}

// TestRaftQueueBound: peers' messages beyond maxQueuedMessages are
// dropped (counted), never the node's own proposals; one drain steps
// everything queued and answers a refused proposal.
func TestRaftQueueBound(t *testing.T) {
	r := advanceOnly(t)
	for range maxQueuedMessages + 10 {
		r.step(&pb.Message{Type: pb.MsgHeartbeatResp.Enum(), From: new(uint64(2)), To: new(uint64(1))})
	}
	if got := r.dropped.Load(); got != 10 {
		t.Fatalf("%d messages dropped, want 10", got)
	}
	refused := r.proposeAsync([]byte("x"))
	if len(r.q) != maxQueuedMessages+1 {
		t.Fatalf("%d queued, want %d (the proposal is never dropped)", len(r.q), maxQueuedMessages+1)
	}
	r.drain()
	if len(r.q) != 0 {
		t.Fatalf("%d still queued after a drain", len(r.q))
	}
	select {
	case err := <-refused:
		if !errors.Is(err, raft.ErrProposalDropped) {
			t.Fatalf("a proposal without a leader: %v, want ErrProposalDropped", err)
		}
	default:
		t.Fatal("a proposal raft refused was not answered")
	}
}

// TestEarlyApplyNeedsDurableEntry: committed entries apply before a
// Ready's writes only if the raft log held them durably before it. A
// follower that holds a deposed leader's uncommitted entries gets the new
// leader's entries at the same indexes, committed, in one append: raft
// hands them as committed entries of the Ready that writes them over the
// old ones, and they are at or below the log's last durable index, yet
// not durable. Here that write's fsync fails: the follower must stop
// without having applied any of them (before the fix it published the
// new leader's writes its log never held, and a crash after its store's
// WAL synced them left the old entries marked committed by its raft state).
func TestEarlyApplyNeedsDurableEntry(t *testing.T) {
	var broken atomic.Uint64
	c := newTestClusterFS(t, 5, 17, nil, func(id uint64, fs vfs.FS) vfs.FS {
		return vfs.NewErrorFS(fs, vfs.InjectorFunc(func(op vfs.Op, path string) error {
			if broken.Load() == id && op == vfs.OpSync && strings.Contains(path, "/raft/") && strings.HasSuffix(path, ".wal") {
				return fmt.Errorf("%w: fsync %s", vfs.ErrInjected, path)
			}
			return nil
		}))
	})
	old := c.leader()
	if _, err := c.propose(old, Request{Txn: put("first", "v")}); err != nil {
		t.Fatal(err)
	}
	var f uint64
	var rest []uint64
	for _, id := range c.ids {
		switch {
		case id == old:
		case f == 0:
			f = id
		default:
			rest = append(rest, id)
		}
	}
	c.net.Partition([]uint64{old, f}, rest)
	fLast, _ := c.node(f).n.ls.LastIndex()
	for i := range 5 { // appended by old and f, never committed
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		c.node(old).n.Propose(ctx, Request{Txn: put(fmt.Sprint("stale", i), "v")})
		cancel()
	}
	waitFor(t, "the follower to hold the old leader's entries", func() bool {
		last, _ := c.node(f).n.ls.LastIndex()
		return last >= fLast+3
	})
	var lead uint64
	waitFor(t, "a leader in the majority", func() bool {
		for _, id := range rest {
			if l, _ := c.node(id).n.Leader(); l == id {
				lead = id
				return true
			}
		}
		return false
	})
	for i := range 20 {
		if _, err := c.propose(lead, Request{Txn: put(fmt.Sprint("new", i), "v")}); err != nil {
			t.Fatal(err)
		}
	}
	broken.Store(f)
	c.net.Heal()
	fn := c.node(f).n
	waitStopped(t, fn, "the follower to stop on its failed fsync")
	for i := range 20 {
		if _, ok := c.node(f).st.GetNewest(fmt.Sprint("new", i)); ok {
			t.Fatalf("the follower applied new%d, which its raft log never held durably (Err %v)", i, fn.Err())
		}
	}
}
