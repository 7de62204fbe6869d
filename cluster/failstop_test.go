package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kvtool/kvtool/vfs"
)

// TestFailStop: once member 3's disk fails an fsync (of its raft log, or
// of its store's WAL), it stops: it acknowledges nothing more, says why,
// and closes Done; the other two go on committing without it.
func TestFailStop(t *testing.T) {
	for _, dir := range []string{"/raft/", "/wal/"} {
		t.Run(strings.Trim(dir, "/"), func(t *testing.T) {
			var broken atomic.Bool
			faulty := vfs.InjectorFunc(func(op vfs.Op, path string) error {
				if broken.Load() && op == vfs.OpSync && strings.Contains(path, dir) {
					return fmt.Errorf("%w: fsync %s", vfs.ErrInjected, path)
				}
				return nil
			})
			c := newTestClusterFS(t, 3, 7, nil, func(id uint64, fs vfs.FS) vfs.FS {
				if id == 3 {
					return vfs.NewErrorFS(fs, faulty)
				}
				return fs
			})
			c.leader()
			if _, err := c.propose(3, Request{Txn: put("before", "v")}); err != nil {
				t.Fatal(err)
			}
			broken.Store(true)
			bad := c.node(3).n
			i := 0
			waitFor(t, "member 3 to stop after its disk failed", func() bool {
				i++
				if _, err := c.propose(uint64(1+i%2), Request{Txn: put(fmt.Sprint("k", i), "v")}); err != nil {
					t.Fatalf("write %d on the healthy members: %v", i, err)
				}
				return bad.Err() != nil
			})
			waitStopped(t, bad, "Done closed after the failure")
			if err := bad.Err(); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("Err: %v, want ErrFailed naming the fsync error", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := bad.Propose(ctx, Request{Txn: put("after", "v")}); !errors.Is(err, ErrStopped) {
				t.Fatalf("a write on the failed member: %v, want ErrStopped", err)
			}
			if st := bad.Status(); st.Err == "" {
				t.Fatalf("status of the failed member has no error: %+v", st)
			}
			for i := range 20 { // the others go on, with or without a leader change
				if _, err := c.propose(uint64(1+i%2), Request{Txn: put("after", fmt.Sprint(i))}); err != nil {
					t.Fatalf("write after the failure: %v", err)
				}
			}
			waitFor(t, "members 1 and 2 to agree", func() bool {
				a, b := c.node(1).st.Snapshot(), c.node(2).st.Snapshot()
				return a.Index() == b.Index() && a.Hash() == b.Hash()
			})
		})
	}
}

// TestRaftPanicFailsStop: when raft finds a member's state impossible (here
// a heartbeat from the leader whose commit index is past the member's log,
// as a member that lost acknowledged entries sees), the member fails stop
// with ErrInconsistent naming itself, its raft directory and what to do;
// the process goes on (raft's panic does not take it down), its status
// still answers, and the other two go on committing.
func TestRaftPanicFailsStop(t *testing.T) {
	c := newTestCluster(t, 3, 11)
	lead := c.leader()
	victim := followerOf(c, lead)
	if _, err := c.propose(lead, Request{Txn: put("before", "v")}); err != nil {
		t.Fatal(err)
	}
	bad := c.node(victim).n
	st := bad.raft.Status()
	last, _ := bad.ls.LastIndex()
	hb := &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(lead), To: new(victim), Term: new(st.GetTerm()), Commit: new(last + 1000)}
	if err := bad.Receive(context.Background(), hb); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, bad, "the member to stop")
	err := bad.Err()
	for _, want := range []string{fmt.Sprintf("member %x", victim), "tocommit", "raft", "kvtool cluster remove"} {
		if !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("Err %q does not say %q", err, want)
		}
	}
	if !errors.Is(err, ErrInconsistent) || !errors.Is(err, ErrFailed) {
		t.Errorf("Err %v: want ErrInconsistent and ErrFailed", err)
	}
	if s := bad.Status(); s.Err == "" {
		t.Errorf("status of the failed member has no error: %+v", s)
	}
	for i := range 10 {
		if _, err := c.propose(lead, Request{Txn: put("after", fmt.Sprint(i))}); err != nil {
			t.Fatalf("write after the failure: %v", err)
		}
	}
}

// TestRaftLogReadErrorFailsStop: when the leader's raft log cannot be read
// (here every read of its raft directory fails once a follower that was
// cut off needs entries older than the log's cache), raft panics with the
// log's error (raft's own "panic(err)" for a storage error); the leader
// fails stop with that error, which names the log and the entries, and the process goes
// on, as for raft's other panics (TestRaftPanicFailsStop).
func TestRaftLogReadErrorFailsStop(t *testing.T) {
	var broken atomic.Uint64 // the member whose raft log reads fail
	c := newTestClusterFS(t, 3, 13, nil, func(id uint64, fs vfs.FS) vfs.FS {
		return vfs.NewErrorFS(fs, vfs.InjectorFunc(func(op vfs.Op, path string) error {
			if broken.Load() == id && op == vfs.OpRead && strings.Contains(path, "/raft/") {
				return fmt.Errorf("%w: read %s", vfs.ErrInjected, path)
			}
			return nil
		}))
	})
	lead := c.leader()
	behind := followerOf(c, lead)
	c.net.Isolate(behind)
	value := strings.Repeat("v", 512)
	for i := range 200 { // well past the log's 32 KiB cache
		if _, err := c.propose(lead, Request{Txn: put(fmt.Sprint("k", i), value)}); err != nil {
			t.Fatal(err)
		}
	}
	broken.Store(lead)
	c.net.Rejoin(behind)
	bad := c.node(lead).n
	waitStopped(t, bad, "the leader to stop")
	err := bad.Err()
	if !errors.Is(err, ErrFailed) || !errors.Is(err, vfs.ErrInjected) || !strings.Contains(fmt.Sprint(err), "raft log") || !strings.Contains(fmt.Sprint(err), "entries") {
		t.Fatalf("Err %v: want ErrFailed naming the raft log's read error", err)
	}
	if s := bad.Status(); s.Err == "" {
		t.Errorf("status of the failed member has no error: %+v", s)
	}
}

// TestUndecodableConfProposalRefused: a proposal a peer forwards with a
// membership change that does not decode is refused with an error naming
// the peer; raft's leader would panic decoding it (with the error itself,
// not through its logger), taking the process down. The leader goes on.
func TestUndecodableConfProposalRefused(t *testing.T) {
	c := newTestCluster(t, 3, 13)
	lead := c.leader()
	peer := followerOf(c, lead)
	ln := c.node(lead).n
	for _, typ := range []pb.EntryType{pb.EntryConfChange, pb.EntryConfChangeV2} {
		m := &pb.Message{Type: pb.MsgProp.Enum(), From: new(peer), To: new(lead),
			Entries: []*pb.Entry{{Type: typ.Enum(), Data: []byte{0xff, 0xff, 0xff}}}}
		err := ln.Receive(context.Background(), m)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("member %x", peer)) {
			t.Fatalf("%v: Receive returned %v, want an error naming member %x", typ, err, peer)
		}
	}
	if _, err := c.propose(lead, Request{Txn: put("after", "v")}); err != nil {
		t.Fatalf("a write after the refused proposals: %v", err)
	}
	if err := ln.Err(); err != nil {
		t.Fatalf("the leader failed: %v", err)
	}
}

// A snapshot message whose membership raft cannot restore (a voter that is
// also a learner) is refused with an error before raft sees it: raft
// would panic restoring it (not through its logger, so not as a
// raftPanic), which took the whole process down. Here the member even
// holds a staged store at that index, so only the membership check stands
// between the message and raft; the member goes on and the cluster
// commits.
func TestSnapshotWithImpossibleMembershipRefused(t *testing.T) {
	c := newTestCluster(t, 3, 13)
	lead := c.leader()
	victim := followerOf(c, lead)
	if _, err := c.propose(lead, Request{Txn: put("before", "v")}); err != nil {
		t.Fatal(err)
	}
	n := c.node(victim).n
	last, _ := n.ls.LastIndex()
	idx := last + 100
	n.snaps.mu.Lock()
	n.snaps.staged = idx
	n.snaps.mu.Unlock()
	m := &pb.Message{Type: pb.MsgSnap.Enum(), From: new(lead), To: new(victim), Term: new(n.raft.Status().GetTerm()),
		Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(idx), Term: new(n.raft.Status().GetTerm()),
			ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{victim}}}}}
	err := n.Receive(context.Background(), m)
	if err == nil || !strings.Contains(err.Error(), "membership") {
		t.Fatalf("Receive of a snapshot with a voter that is also a learner: %v, want an error about its membership", err)
	}
	n.snaps.mu.Lock()
	n.snaps.staged = 0
	n.snaps.mu.Unlock()
	for i := range 5 {
		if _, err := c.propose(victim, Request{Txn: put("after", fmt.Sprint(i))}); err != nil {
			t.Fatalf("write through the member after the refused snapshot: %v", err)
		}
	}
	if err := n.Err(); err != nil {
		t.Fatalf("the member failed: %v", err)
	}
	// Its status says a peer sent something it refused, and who.
	st := n.Status()
	t.Logf("refused: %s", st.RefusedError)
	if st.Refused != 1 || !strings.Contains(st.RefusedError, fmt.Sprintf("member %x", lead)) || !strings.Contains(st.RefusedError, "membership") {
		t.Fatalf("status: %d refused, last %q; want 1, naming member %x and the membership", st.Refused, st.RefusedError, lead)
	}
}
