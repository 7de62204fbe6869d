package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

const testRaftDir = "/data/raft"

func newLogStore(t testing.TB, fs vfs.FS, cache int) *logStore {
	t.Helper()
	if _, err := loadState(fs, testRaftDir); errors.Is(err, errNoState) {
		if err := format.MkdirAllDurable(fs, testRaftDir); err != nil {
			t.Fatal(err)
		}
		st := &raftState{ClusterID: 1, NodeID: 1, Conf: &pb.ConfState{Voters: []uint64{1, 2, 3}}, SnapConf: &pb.ConfState{}}
		if err := saveState(fs, testRaftDir, st); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := openLogStore(fs, testRaftDir, 4096, cache)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// ents returns entries from..to of term, of every kind.
func ents(from, to, term uint64) []*pb.Entry {
	var out []*pb.Entry
	for i := from; i <= to; i++ {
		e := &pb.Entry{Index: new(i), Term: new(term), Type: pb.EntryNormal.Enum()}
		switch i % 4 {
		case 1:
			e.Data = fmt.Appendf(nil, "entry %d of term %d", i, term)
		case 2:
			e.Type, e.Data = pb.EntryConfChange.Enum(), []byte{8, 1}
		case 3:
			e.Type, e.Data = pb.EntryConfChangeV2.Enum(), []byte{16, byte(i)}
		}
		out = append(out, e)
	}
	return out
}

func appendWait(t *testing.T, ls *logStore, es []*pb.Entry) {
	t.Helper()
	p, err := ls.append(es)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
}

// checkLog checks that ls holds exactly want, through Entries (whatever
// mix of cache and disk) and Term.
func checkLog(t *testing.T, ls *logStore, want []*pb.Entry) {
	t.Helper()
	last, _ := ls.LastIndex()
	if last != uint64(len(want)) {
		t.Fatalf("last index %d, want %d", last, len(want))
	}
	for lo := uint64(1); lo <= last; lo += 7 {
		got, err := ls.Entries(lo, last+1, 1<<30)
		if err != nil {
			t.Fatalf("Entries(%d, %d): %v", lo, last+1, err)
		}
		for i, e := range got {
			w := want[lo-1+uint64(i)]
			if e.GetIndex() != w.GetIndex() || e.GetTerm() != w.GetTerm() || e.GetType() != w.GetType() || !bytes.Equal(e.GetData(), w.GetData()) {
				t.Fatalf("entry %d: got %v, want %v", w.GetIndex(), e, w)
			}
		}
		if len(got) != int(last+1-lo) {
			t.Fatalf("Entries(%d, %d) returned %d entries", lo, last+1, len(got))
		}
	}
	for _, w := range want {
		if term, err := ls.Term(w.GetIndex()); err != nil || term != w.GetTerm() {
			t.Fatalf("Term(%d) = %d, %v; want %d", w.GetIndex(), term, err, w.GetTerm())
		}
	}
}

func TestLogStoreAppendCutAndReopen(t *testing.T) {
	fs := vfs.NewMem()
	ls := newLogStore(t, fs, 600) // a small cache: most reads come from disk
	want := ents(1, 40, 1)
	appendWait(t, ls, want)
	appendWait(t, ls, ents(41, 50, 2))
	want = append(want, ents(41, 50, 2)...)
	checkLog(t, ls, want)
	// A new leader replaces entries from 31 on.
	repl := ents(31, 45, 3)
	appendWait(t, ls, repl)
	want = append(want[:30], repl...)
	checkLog(t, ls, want)
	if err := ls.close(); err != nil {
		t.Fatal(err)
	}
	ls = newLogStore(t, fs, 600)
	defer ls.close()
	checkLog(t, ls, want)
	if _, err := ls.Term(46); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Term past the end: %v", err)
	}
	got, err := ls.Entries(1, 46, 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("Entries with a tiny maxSize: %d entries, %v; want exactly one", len(got), err)
	}
	// Past the end: a storageError (raft panics with it, and the Ready loop
	// recovers it) that is still ErrUnavailable to errors.Is.
	var se *storageError
	if _, err := ls.Entries(40, 50, 1<<20); !errors.As(err, &se) || !errors.Is(err, raft.ErrUnavailable) || !strings.Contains(err.Error(), testRaftDir) {
		t.Fatalf("Entries past the end: %v; want a storageError naming %s that is ErrUnavailable", err, testRaftDir)
	}
}

func TestLogStoreRefusesGapsAndCommittedCuts(t *testing.T) {
	ls := newLogStore(t, vfs.NewMem(), 1<<20)
	defer ls.close()
	appendWait(t, ls, ents(1, 10, 1))
	if _, err := ls.append(ents(12, 13, 1)); err == nil {
		t.Fatal("a gap was accepted")
	}
	if _, err := ls.append(ents(11, 11, 0)); err == nil {
		t.Fatal("a lower term was accepted")
	}
	if err := ls.setHardState(&pb.HardState{Term: new(uint64(2)), Commit: new(uint64(8))}); err != nil {
		t.Fatal(err)
	}
	if _, err := ls.append(ents(5, 6, 2)); err == nil {
		t.Fatal("cutting committed entries was accepted")
	}
}

func TestLogStoreHardStateSurvives(t *testing.T) {
	fs := vfs.NewMem()
	ls := newLogStore(t, fs, 1<<20)
	appendWait(t, ls, ents(1, 5, 4))
	if err := ls.setHardState(&pb.HardState{Term: new(uint64(4)), Commit: new(uint64(1))}); err != nil {
		t.Fatal(err)
	}
	// A vote alone, in the same term, must be as durable as a new term.
	if err := ls.setHardState(&pb.HardState{Term: new(uint64(4)), Vote: new(uint64(2)), Commit: new(uint64(3))}); err != nil {
		t.Fatal(err)
	}
	if err := ls.setHardState(&pb.HardState{Term: new(uint64(4)), Vote: new(uint64(2)), Commit: new(uint64(5))}); err != nil {
		t.Fatal(err)
	}
	cs := &pb.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{4}, VotersOutgoing: []uint64{3}, AutoLeave: new(true)}
	if err := ls.setConf(cs, 5); err != nil {
		t.Fatal(err)
	}
	// Only what was saved durably survives a crash: term, vote, membership.
	clone := fs.CrashClone(vfs.CrashOptions{})
	ls.close()
	ls = newLogStore(t, clone, 1<<20)
	defer ls.close()
	hs, gotCS, _ := ls.InitialState()
	if hs.GetTerm() != 4 || hs.GetVote() != 2 || hs.GetCommit() < 3 {
		t.Fatalf("hard state after restart: %v", hs)
	}
	if gotCS.String() != cs.String() || ls.state().ConfIndex != 5 {
		t.Fatalf("conf state after restart: %v at %d, want %v at 5", gotCS, ls.state().ConfIndex, cs)
	}
	if err := ls.raiseCommit(6); err == nil {
		t.Fatal("an applied index past the log's end was accepted")
	}
	if err := ls.raiseCommit(5); err != nil {
		t.Fatal(err)
	}
	if hs, _, _ := ls.InitialState(); hs.GetCommit() != 5 {
		t.Fatalf("commit after raiseCommit(5): %d", hs.GetCommit())
	}
}

func TestStateFileDamage(t *testing.T) {
	st := &raftState{ClusterID: 7, NodeID: 3, Term: 9, Vote: 2, Commit: 4, Conf: &pb.ConfState{Voters: []uint64{1, 2, 3}}, SnapConf: &pb.ConfState{}}
	good := encodeState(st)
	got, err := decodeState(bytes.NewReader(good), "STATE", int64(len(good)))
	if err != nil || !equalState(got, st) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for off := 0; off < len(good); off += 5 {
		bad := bytes.Clone(good)
		bad[off] ^= 0x40
		if _, err := decodeState(bytes.NewReader(bad), "STATE", int64(len(bad))); !errors.Is(err, format.ErrCorruption) {
			t.Fatalf("flipped byte %d: %v, want corruption", off, err)
		}
	}
	fs := vfs.NewMem()
	fs.MkdirAll("/r", 0o755)
	if err := format.WriteFileAtomic(fs, filepath.Join("/r", StateName), good[:len(good)-3]); err != nil {
		t.Fatal(err)
	}
	if _, err := loadState(fs, "/r"); !errors.Is(err, format.ErrCorruption) {
		t.Fatalf("truncated state file: %v", err)
	}
}

func FuzzDecodeState(f *testing.F) {
	st := &raftState{ClusterID: 7, NodeID: 3, Term: 9, Conf: &pb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}, SnapConf: &pb.ConfState{}}
	f.Add(encodeState(st))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeState(bytes.NewReader(b), "STATE", int64(len(b)))
		if err != nil {
			if !errors.Is(err, format.ErrCorruption) && !errors.Is(err, format.ErrUnknownVersion) {
				t.Fatalf("error is not corruption: %v", err)
			}
			return
		}
		again, err := decodeState(bytes.NewReader(encodeState(s)), "STATE", int64(len(encodeState(s))))
		if err != nil || !equalState(again, s) {
			t.Fatalf("re-encoding what was decoded: %v", err)
		}
	})
}

// TestLogStoreCommitNeverPastTheLog: a state file whose commit index runs
// ahead of the durable log (a crash between the two) must not keep the
// node from starting: the commit index is a hint.
func TestLogStoreCommitNeverPastTheLog(t *testing.T) {
	fs := vfs.NewMem()
	ls := newLogStore(t, fs, 1<<20)
	appendWait(t, ls, ents(1, 5, 1))
	st := ls.state()
	st.Term, st.Commit = 1, 10
	if err := saveState(fs, testRaftDir, &st); err != nil {
		t.Fatal(err)
	}
	ls.close()
	ls = newLogStore(t, fs, 1<<20)
	defer ls.close()
	if hs, _, _ := ls.InitialState(); hs.GetCommit() != 5 {
		t.Fatalf("commit %d, want it clamped to the log's end 5", hs.GetCommit())
	}
}

// BenchmarkLogStoreAppend appends one entry at a time, as a busy member
// does, to a log whose tail cache is full: each append evicts the oldest
// cached entry, which must cost the same however many entries the cache
// holds.
//
//	go test -run XXX -bench LogStoreAppend ./cluster/
func BenchmarkLogStoreAppend(b *testing.B) {
	for _, cache := range []int{256 << 10, 8 << 20} {
		b.Run(fmt.Sprintf("cache=%dKiB", cache>>10), func(b *testing.B) {
			ls := newLogStore(b, vfs.NewMem(), cache)
			defer ls.close()
			add, _ := entryAppender(b, ls)
			for ls.cacheBytes < cache { // fill the cache first
				add()
			}
			b.ResetTimer()
			for range b.N {
				add()
			}
		})
	}
}

// entryAppender returns a function that appends the next entry (term 1,
// 200 bytes of data) to ls, from index 1 on, and the index it appends
// next.
func entryAppender(tb testing.TB, ls *logStore) (func(), *uint64) {
	data := make([]byte, 200)
	next := new(uint64(1))
	return func() {
		e := &pb.Entry{Index: new(*next), Term: new(uint64(1)), Type: pb.EntryNormal.Enum(), Data: data}
		if _, err := ls.append([]*pb.Entry{e}); err != nil {
			tb.Fatal(err)
		}
		*next++
	}, next
}

// TestLogStoreCacheEvictionIsCheap appends to a log whose tail cache is
// full, so every append evicts: the bytes allocated per append must not
// grow with the cache (a copy of the cache per append allocated 8 bytes
// per cached entry each time: 36 KiB an append here).
func TestLogStoreCacheEvictionIsCheap(t *testing.T) {
	const cache = 1 << 20
	ls := newLogStore(t, vfs.NewMem(), cache)
	defer ls.close()
	add, nextp := entryAppender(t, ls)
	for ls.cacheBytes < cache {
		add()
	}
	cached := len(ls.cache)
	const n = 2000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		add()
	}
	runtime.ReadMemStats(&after)
	perAppend := (after.TotalAlloc - before.TotalAlloc) / n
	if limit := uint64(cached) * 8 / 4; perAppend > limit {
		t.Fatalf("%d bytes allocated per append with %d entries cached (limit %d): eviction copies the cache", perAppend, cached, limit)
	}
	t.Logf("%d bytes allocated per append, %d entries cached", perAppend, cached)
	// The cache still holds exactly the newest entries.
	next := *nextp
	got, err := ls.Entries(next-3, next, 1<<30)
	if err != nil || len(got) != 3 || got[2].GetIndex() != next-1 {
		t.Fatalf("the last 3 entries after eviction: %v, %v", got, err)
	}
}
