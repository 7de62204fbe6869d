package cluster

import (
	"github.com/kvtool/kvtool/store"
	pb "go.etcd.io/raft/v3/raftpb"
	"slices"

	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// TestVerifyRaftDamage damages a stopped member's raft directory one way
// at a time and checks that datadir.Verify with VerifyRaft reports each
// damage as a fault of the right file, kind and offset, and an intact
// directory as sound.
func TestVerifyRaftDamage(t *testing.T) {
	c := newTestCluster(t, 3, 41)
	lead := c.leader()
	for i := range 30 {
		if _, err := c.propose(lead, Request{Txn: put(fmt.Sprintf("k%02d", i), strings.Repeat("v", 40))}); err != nil {
			t.Fatal(err)
		}
	}
	applied := c.converged()
	id := followerOf(c, lead)
	c.close()
	member := c.node(id).fs
	raftDir := filepath.Join("/data", RaftDir)

	verify := func(t *testing.T, fs vfs.FS) *datadir.Report {
		t.Helper()
		rep, err := datadir.Verify(fs, "/data", datadir.VerifyOptions{Raft: VerifyRaft})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	fault := func(t *testing.T, rep *datadir.Report, path string, kind datadir.FileKind, pk datadir.ProblemKind, off func(int64) bool) {
		t.Helper()
		for _, f := range rep.Files {
			for _, p := range f.Problems {
				if p.Path == path && f.Kind == kind && p.Kind == pk && off(p.Offset) {
					return
				}
			}
		}
		t.Fatalf("want a %s fault of %s (%s); got %v (notes %q)", pk, path, kind, rep.Problems(), rep.Notes)
	}
	anyOff := func(int64) bool { return true }
	segPath := func(t *testing.T, fs vfs.FS) (string, int64) {
		rep, err := segment.Verify(fs, raftDir, segment.VerifyOptions{})
		if err != nil || len(rep.Segments) == 0 {
			t.Fatalf("raft log: %v, %d segments", err, len(rep.Segments))
		}
		s := rep.Segments[len(rep.Segments)-1]
		return s.Path, s.Size
	}

	t.Run("intact", func(t *testing.T) {
		rep := verify(t, member.CrashClone(vfs.CrashOptions{}))
		if !rep.OK() {
			t.Fatalf("intact member directory: %v", rep.Problems())
		}
		if rep.Raft == nil || rep.Raft.LastIndex < applied || rep.Raft.Term == 0 {
			t.Fatalf("raft info %+v, want the log to reach applied index %d", rep.Raft, applied)
		}
		kinds := map[datadir.FileKind]int{}
		for _, f := range rep.Files {
			kinds[f.Kind]++
		}
		if kinds[datadir.KindRaftState] != 1 || kinds[datadir.KindRaftSegment] == 0 {
			t.Fatalf("files checked %v, want the raft state and its segments", kinds)
		}
	})
	t.Run("segment byte", func(t *testing.T) {
		fs := member.CrashClone(vfs.CrashOptions{})
		path, size := segPath(t, fs)
		at := size / 2
		flipAt(t, fs, path, at, 0x20)
		fault(t, verify(t, fs), path, datadir.KindRaftSegment, "corruption", func(off int64) bool { return off <= at && off > at-4096 })
	})
	t.Run("torn tail", func(t *testing.T) {
		fs := member.CrashClone(vfs.CrashOptions{})
		path, size := segPath(t, fs)
		f, err := fs.OpenReadWrite(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{0x31, 0x07, 0x00, 0x40}, size); err != nil { // half a frame header after the last record
			t.Fatal(err)
		}
		f.Close()
		rep := verify(t, fs)
		fault(t, rep, path, datadir.KindRaftSegment, "torn-tail", func(off int64) bool { return off == size })
		if len(rep.Problems()) != 1 {
			t.Fatalf("a torn tail only, got %v", rep.Problems())
		}
	})
	t.Run("state byte", func(t *testing.T) {
		fs := member.CrashClone(vfs.CrashOptions{})
		path := filepath.Join(raftDir, StateName)
		flipAt(t, fs, path, 40, 0x20)
		fault(t, verify(t, fs), path, datadir.KindRaftState, "corruption", anyOff)
	})
	t.Run("state missing", func(t *testing.T) {
		fs := member.CrashClone(vfs.CrashOptions{})
		path := filepath.Join(raftDir, StateName)
		if err := fs.Remove(path); err != nil {
			t.Fatal(err)
		}
		fault(t, verify(t, fs), path, datadir.KindRaftState, datadir.Missing, anyOff)
	})
	// The member's start refuses a store with entries and no raft state.
	noState := func(t *testing.T) *vfs.MemFS {
		fs := member.CrashClone(vfs.CrashOptions{})
		names, err := fs.List(raftDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := fs.Remove(filepath.Join(raftDir, n)); err != nil {
				t.Fatal(err)
			}
		}
		return fs
	}
	t.Run("state and log missing", func(t *testing.T) {
		fs := noState(t)
		if err := fs.MkdirAll(filepath.Join(raftDir, IncomingDir, "0000000000000001"), 0o755); err != nil { // a snapshot it received
			t.Fatal(err)
		}
		fault(t, verify(t, fs), filepath.Join(raftDir, StateName), datadir.KindRaftState, datadir.Missing, anyOff)
		if st, n, err := startAlone(fs, id); err == nil {
			n.Close()
			st.Close()
			t.Fatal("the member started on a store with entries and no raft state")
		} else if !errors.Is(err, ErrDamaged) {
			t.Fatalf("start of a member whose raft state is lost: %v, want ErrDamaged (serve: exit 3, rebuild it)", err)
		}
	})
	t.Run("empty raft directory", func(t *testing.T) { // a refused cluster start or join on a single store leaves it
		fs := noState(t)
		if err := WriteJoin(fs, "/data", JoinRecord{ClusterID: testClusterID, Self: MemberRecord{Name: "n", ID: id}}); err != nil {
			t.Fatal(err)
		}
		if rep := verify(t, fs); !rep.OK() {
			t.Fatalf("a store with an empty raft directory beside it: %v", rep.Problems())
		}
		if st, n, err := startAlone(fs, id); err == nil {
			n.Close()
			st.Close()
			t.Fatal("a cluster member started on a single store with entries")
		} else if errors.Is(err, ErrDamaged) {
			t.Fatalf("a cluster start on a single store with entries: %v, want a refusal that is no damage", err)
		}
	})
	t.Run("log behind the store", func(t *testing.T) {
		fs := member.CrashClone(vfs.CrashOptions{})
		if _, err := segment.TruncateAfter(fs, raftDir, applied-5); err != nil {
			t.Fatal(err)
		}
		fault(t, verify(t, fs), raftDir, datadir.KindRaftLog, datadir.Coverage, anyOff)
	})
	// appendRecord appends one record after the log's end, as a member's
	// own writer would, with checksums intact.
	appendRecord := func(t *testing.T, fs vfs.FS, term func(last uint64) uint64, typ format.FrameType, data []byte) string {
		t.Helper()
		path, _ := segPath(t, fs)
		l, err := segment.Open(segment.Options{FS: fs, Dir: raftDir, SegmentSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		last := l.LastIndex()
		p, err := l.EnqueueAt(last+1, term(last), typ, data)
		if err == nil {
			err = p.Wait()
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Run("term past the state", func(t *testing.T) { // a crash between the entries' fsync and STATE's
		fs := member.CrashClone(vfs.CrashOptions{})
		st, err := loadState(fs, raftDir)
		if err != nil {
			t.Fatal(err)
		}
		appendRecord(t, fs, func(uint64) uint64 { return st.Term + 1 }, format.FrameWALNoop, nil)
		if rep := verify(t, fs); !rep.OK() {
			t.Fatalf("entries of a term STATE does not have yet are no fault: %v", rep.Problems())
		}
	})
	t.Run("not a raft entry", func(t *testing.T) {
		fs := member.CrashClone(vfs.CrashOptions{})
		st, err := loadState(fs, raftDir)
		if err != nil {
			t.Fatal(err)
		}
		path := appendRecord(t, fs, func(uint64) uint64 { return st.Term }, format.FrameWALRaft, nil)
		fault(t, verify(t, fs), path, datadir.KindRaftSegment, "corruption", func(off int64) bool { return off > 0 })
	})
	t.Run("removed marker", func(t *testing.T) {
		fs := member.CrashClone(vfs.CrashOptions{})
		if err := writeRemoved(fs, raftDir, testClusterID, applied); err != nil {
			t.Fatal(err)
		}
		rep := verify(t, fs)
		if !rep.OK() || !strings.Contains(strings.Join(rep.Notes, "\n"), "was removed") {
			t.Fatalf("a REMOVED marker is a note, not a fault: %v, notes %q", rep.Problems(), rep.Notes)
		}
		path := filepath.Join(raftDir, RemovedName)
		flipAt(t, fs, path, 30, 0x20)
		fault(t, verify(t, fs), path, datadir.KindRaftMarker, "corruption", anyOff)
	})
}

// TestImpossibleMembershipState: a STATE whose checksum holds but whose
// membership raft cannot restore (a voter also a learner; outgoing voters
// and next learners that no joint change leaves) is damage that verify
// reports and the start refuses with an error: raft itself panicked on
// it ("ConfStates not equivalent"), and the process died with a stack.
func TestImpossibleMembershipState(t *testing.T) {
	c, id := stoppedFollower(t, 5)
	raftDir := filepath.Join("/data", RaftDir)
	for name, conf := range map[string]*pb.ConfState{
		"a voter also a learner":             {Voters: []uint64{1, 2, 3}, Learners: []uint64{1}},
		"next learners with no joint change": {Voters: []uint64{1, 2, 3}, VotersOutgoing: []uint64{4}, LearnersNext: []uint64{2}},
	} {
		for _, snap := range []bool{false, true} {
			what := fmt.Sprintf("%s (snapshot's membership %v)", name, snap)
			fs := c.node(id).fs.CrashClone(vfs.CrashOptions{})
			st, err := loadState(fs, raftDir)
			if err != nil {
				t.Fatal(err)
			}
			if snap {
				st.SnapConf = conf
			} else {
				st.Conf = conf
			}
			if err := saveState(fs, raftDir, st); err != nil {
				t.Fatal(err)
			}
			rep, err := datadir.Verify(fs, "/data", datadir.VerifyOptions{Raft: VerifyRaft})
			if err != nil || rep.OK() {
				t.Errorf("%s: verify finds no fault (%v)", what, err)
			}
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("%s: the start panicked: %v", what, p)
					}
				}()
				s, n, err := startAlone(fs, id)
				if err == nil {
					n.Close()
					s.Close()
					if !snap {
						t.Errorf("%s: the member started", what)
					}
				} else if format.AsCorruption(err) == nil {
					t.Errorf("%s: start refused with %v, want a corruption error naming STATE", what, err)
				}
			}()
		}
	}
}

// TestJoinerInitialVoters: a joiner's raft state starts from the voters
// its JOIN record names (from the answer of the member that added it); a
// duplicate there is one voter, and ID 0 is refused before any raft state
// is written. A duplicate reached raft as two voters of one ID, which its
// restore does not accept: the start panicked, or, with STATE's
// membership checked, wrote a STATE it then refused as corrupt.
func TestJoinerInitialVoters(t *testing.T) {
	start := func(voters []uint64) (*vfs.MemFS, error) {
		fs := vfs.NewMem()
		s, err := store.Open(store.Options{FS: fs, Dir: "/data", Create: true, Replica: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		n, err := Start(Config{ID: 4, ClusterID: testClusterID, Peers: []uint64{1, 2, 3, 4}, FS: fs, Dir: "/data", Store: s,
			Transport: NewMemNetwork(1).Endpoint(4), Join: &JoinRecord{ClusterID: testClusterID, Self: MemberRecord{Name: "n4", ID: 4}, InitialVoters: voters}})
		if err == nil {
			n.Close()
		}
		return fs, err
	}
	fs, err := start([]uint64{3, 1, 1, 2})
	if err != nil {
		t.Fatalf("a joiner whose initial voters repeat one: %v", err)
	}
	st, err := loadState(fs, filepath.Join("/data", RaftDir))
	if err != nil || !slices.Equal(st.Conf.GetVoters(), []uint64{1, 2, 3}) {
		t.Fatalf("its raft state: %v, %v; want voters 1, 2, 3", st, err)
	}
	fs, err = start([]uint64{0, 1, 2})
	if err == nil {
		t.Fatal("a joiner whose initial voters include ID 0 started")
	}
	if _, serr := loadState(fs, filepath.Join("/data", RaftDir)); !errors.Is(serr, errNoState) {
		t.Fatalf("a refused join left a raft state (%v): %v", serr, err)
	}
}

// TestVerifyRaftLogChangedUnderIt: verify beside a running member whose
// compaction removes a raft segment between verify's listing and its read
// of that segment: the log changed, which is no damage and no reason to
// fail (kvtool verify exited 1 with "no such file or directory"); a note
// says to run it again.
func TestVerifyRaftLogChangedUnderIt(t *testing.T) {
	c, id := stoppedFollower(t, 43)
	for _, at := range []string{"verify", "read"} {
		mem := c.node(id).fs.CrashClone(vfs.CrashOptions{})
		opens := 0
		fs := vfs.NewErrorFS(mem, vfs.InjectorFunc(func(op vfs.Op, path string) error {
			if _, isSeg := format.ParseSegmentName(filepath.Base(path)); op == vfs.OpOpen && isSeg && filepath.Base(filepath.Dir(path)) == RaftDir {
				// segment.Verify opens each segment once, the entry read after it again.
				if opens++; at == "verify" && opens == 1 || at == "read" && opens == 2 {
					mem.Remove(path) // a compaction drops it now
				}
			}
			return nil
		}))
		rep, err := datadir.Verify(fs, "/data", datadir.VerifyOptions{Raft: VerifyRaft})
		if err != nil {
			t.Fatalf("the raft log compacted while %s read it: %v", at, err)
		}
		if !strings.Contains(strings.Join(rep.Notes, "\n"), "run verify again") {
			t.Fatalf("the raft log compacted while %s read it: no note says so (%v; notes %q)", at, rep.Problems(), rep.Notes)
		}
	}
}

// stoppedFollower starts a three-member cluster (seed), commits one write
// on every member, stops them all and returns the cluster and a follower
// of its last leader, whose files the caller then examines.
func stoppedFollower(t *testing.T, seed uint64) (*testCluster, uint64) {
	t.Helper()
	c := newTestCluster(t, 3, seed)
	lead := c.leader()
	if _, err := c.propose(lead, Request{Txn: put("a", "b")}); err != nil {
		t.Fatal(err)
	}
	c.converged()
	id := followerOf(c, lead)
	c.close()
	return c, id
}
