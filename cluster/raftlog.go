package cluster

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"sync"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// RaftDir is the raft directory inside a node's data directory.
const RaftDir = format.RaftDir

// DefaultCacheBytes bounds the log tail kept in memory when
// Config.LogCacheBytes is 0.
const DefaultCacheBytes = 8 << 20

// DefaultLogSegmentSize is the raft log's segment size when
// Config.LogSegmentSize is 0.
const DefaultLogSegmentSize = 16 << 20

// logStore is raft's Storage over the node's raft log (our WAL format, in
// DATA/raft) and its state file. The Ready loop appends to it and raft
// reads it there; compaction, status and snapshot sends read it from
// their own goroutines, so mu guards everything.
type logStore struct {
	fs       vfs.FS
	dir      string
	segSize  int64
	cacheMax int

	mu    sync.Mutex
	log   *segment.Log
	st    raftState // as last saved, except Commit (see hardState)
	hs    *pb.HardState
	last  uint64
	terms []termRun // term runs covering [st.SnapIndex, last]
	// cache is the log's tail: entries last-len(cache)+1 .. last.
	cache       []*pb.Entry
	cacheBytes  int
	recs        []segment.Entry // append's buffer, kept between calls
	cuts        int             // suffixes cut (truncateAfter), for status and tests
	compactions int             // compactions that moved the snapshot (compact)
}

// termRun says entries from first on (up to the next run) have term term.
type termRun struct{ first, term uint64 }

// openLogStore opens the raft log and state in dir, reading the log once
// to learn its terms and fill the tail cache. The state file must exist
// (bootstrap writes it).
func openLogStore(fs vfs.FS, dir string, segSize int64, cacheMax int) (*logStore, error) {
	st, err := loadState(fs, dir)
	if err != nil {
		return nil, err
	}
	ls := &logStore{fs: fs, dir: dir, segSize: segSize, cacheMax: cacheMax, st: *st}
	ls.hs = &pb.HardState{Term: new(st.Term), Vote: new(st.Vote), Commit: new(st.Commit)}
	if err := ls.openLog(); err != nil {
		return nil, err
	}
	if err := ls.load(); err != nil {
		ls.log.Close()
		return nil, err
	}
	return ls, nil
}

// openLog opens the segments; a torn tail (a crash in the middle of an
// append that was never acknowledged) is cut.
func (ls *logStore) openLog() error {
	l, err := segment.Open(segment.Options{
		FS: ls.fs, Dir: ls.dir, SegmentSize: ls.segSize, FirstIndex: ls.st.SnapIndex + 1, RepairTail: true,
		NoGather: true, // the Ready loop appends a Ready's entries at once, then waits for them
		// and writes them itself (Pending.Wait), or wakes the flusher
		// when it has entries to apply meanwhile (logStore.wake).
		CallerFlush: true,
		// A joining member's first segment is removed unused when the
		// snapshot restarts the log (SkipTo); its spare would be too.
		LazySpare: true,
	})
	if err != nil {
		return fmt.Errorf("kvtool/cluster: open raft log %s: %w", ls.dir, err)
	}
	ls.log = l
	return nil
}

// load reads the log after the snapshot: its terms, and its tail into the
// cache.
func (ls *logStore) load() error {
	snap := ls.st.SnapIndex
	if first := ls.log.FirstIndex(); first > snap+1 && ls.log.LastIndex() >= first {
		return fmt.Errorf("%w: raft log %s starts at %d, but the raft state says it continues snapshot %d (entries missing; restore the node from a peer)", ErrDamaged,
			ls.dir, first, snap)
	}
	ls.last = snap
	ls.terms = []termRun{{snap, ls.st.SnapTerm}}
	if stale, err := ls.staleLog(); err != nil {
		return err
	} else if stale {
		return ls.discardLog()
	}
	r, err := ls.log.NewReader(snap + 1)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		re, err := r.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("kvtool/cluster: read raft log: %w", err)
		}
		if re.Index <= snap {
			continue
		}
		e, err := entryOf(re, ls.dir)
		if err != nil {
			return err
		}
		ls.note(e)
	}
	if ls.last != ls.log.LastIndex() {
		return fmt.Errorf("%w: raft log %s ends at %d but holds entries up to %d", ErrDamaged, ls.dir, ls.last, ls.log.LastIndex())
	}
	// The saved commit index is a hint: never past the durable log (raft
	// refuses to start so), whatever order a crash left things in.
	ls.hs.Commit = new(max(ls.st.SnapIndex, min(ls.hs.GetCommit(), ls.last)))
	return nil
}

// note records an entry just appended (or read at open) at the end of the
// log: its term and its place in the cache.
func (ls *logStore) note(e *pb.Entry) {
	ls.last = e.GetIndex()
	if t := e.GetTerm(); t != ls.terms[len(ls.terms)-1].term {
		ls.terms = append(ls.terms, termRun{ls.last, t})
	}
	ls.cache = append(ls.cache, e)
	ls.cacheBytes += proto.Size(e)
	drop := 0
	for ls.cacheBytes > ls.cacheMax && drop < len(ls.cache)-1 {
		ls.cacheBytes -= proto.Size(ls.cache[drop])
		drop++
	}
	if drop > 0 {
		// Slide the window instead of copying it (a copy per append cost
		// O(cache) each once the cache was full: 0.3ms an entry at 8 MiB).
		// append copies the live entries when it next needs room, so the
		// array stays within about twice the cache.
		clear(ls.cache[:drop])
		ls.cache = ls.cache[drop:]
	}
}

// InitialState implements raft.Storage.
func (ls *logStore) InitialState() (*pb.HardState, *pb.ConfState, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return proto.Clone(ls.hs).(*pb.HardState), proto.Clone(ls.st.Conf).(*pb.ConfState), nil
}

// FirstIndex implements raft.Storage.
func (ls *logStore) FirstIndex() (uint64, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.st.SnapIndex + 1, nil
}

// LastIndex implements raft.Storage.
func (ls *logStore) LastIndex() (uint64, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.last, nil
}

// Term implements raft.Storage: from the term runs, never from disk.
func (ls *logStore) Term(i uint64) (uint64, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	switch {
	case i < ls.st.SnapIndex:
		return 0, raft.ErrCompacted
	case i > ls.last:
		return 0, raft.ErrUnavailable
	}
	k := sort.Search(len(ls.terms), func(k int) bool { return ls.terms[k].first > i }) - 1
	return ls.terms[k].term, nil
}

// Snapshot implements raft.Storage: the metadata of the snapshot the log
// starts after. Its bytes are a checkpoint that travels through transfer/,
// never through raft.
func (ls *logStore) Snapshot() (*pb.Snapshot, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index: new(ls.st.SnapIndex), Term: new(ls.st.SnapTerm), ConfState: proto.Clone(ls.st.SnapConf).(*pb.ConfState),
	}}, nil
}

// Entries implements raft.Storage: from the cache, or from disk for what
// is older than the cache.
func (ls *logStore) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	switch {
	case lo <= ls.st.SnapIndex:
		return nil, raft.ErrCompacted
	case hi > ls.last+1 || lo > hi:
		// raft compares with ==, so a wrapped ErrUnavailable would be
		// "any other error" to it: a storageError, which the loop recovers.
		return nil, &storageError{fmt.Errorf("kvtool/cluster: entries [%d, %d) asked of the raft log in %s, which ends at %d: %w", lo, hi, ls.dir, ls.last, raft.ErrUnavailable)}
	case lo == hi:
		return nil, nil
	}
	var out []*pb.Entry
	size := uint64(0)
	full := func(e *pb.Entry) bool {
		size += uint64(proto.Size(e))
		return len(out) > 0 && size > maxSize
	}
	cacheFirst := ls.last + 1 - uint64(len(ls.cache))
	if lo < cacheFirst {
		var err error
		if out, err = ls.readDisk(lo, min(hi, cacheFirst), full); err != nil {
			return nil, &storageError{fmt.Errorf("kvtool/cluster: raft log %s: entries %d to %d: %w", ls.dir, lo, hi-1, err)}
		}
		if len(out) < int(min(hi, cacheFirst)-lo) {
			return out, nil // maxSize reached
		}
	}
	for i := max(lo, cacheFirst); i < hi; i++ {
		e := ls.cache[i-cacheFirst]
		if full(e) {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// storageError is a failed read of the raft log's segments, as Entries
// returns it to raft: raft panics with any Storage error but ErrCompacted
// and ErrUnavailable (its "panic(err)"), and the Ready loop, on which raft
// runs, recovers this one and fails the node stop with it (ready.go run)
// instead of the process dying on a disk's error.
type storageError struct{ err error }

func (e *storageError) Error() string { return e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

// readDisk reads entries [lo, hi) from the segments until full says the
// next one does not fit. ls.mu is held.
func (ls *logStore) readDisk(lo, hi uint64, full func(*pb.Entry) bool) ([]*pb.Entry, error) {
	r, err := ls.log.NewReader(lo)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []*pb.Entry
	for i := lo; i < hi; i++ {
		re, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("kvtool/cluster: read raft log entry %d: %w", i, err)
		}
		if re.Index != i {
			return nil, fmt.Errorf("kvtool/cluster: raft log %s: read entry %d, want %d", ls.dir, re.Index, i)
		}
		e, err := entryOf(re, ls.dir)
		if err != nil {
			return nil, err
		}
		if full(e) {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// append adds entries to the log, first cutting the suffix they replace
// (raft sends a follower entries from the first index where it conflicts
// with the leader). It returns the last record's pending write: wait on it
// before acknowledging the entries (nil when there are none).
func (ls *logStore) append(ents []*pb.Entry) (*segment.Pending, error) {
	if len(ents) == 0 {
		return nil, nil
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	first := ents[0].GetIndex()
	if first <= ls.last {
		if err := ls.truncateAfter(first - 1); err != nil {
			return nil, err
		}
	}
	if first != ls.last+1 {
		return nil, fmt.Errorf("kvtool/cluster: raft entries from %d do not follow the log ending at %d", first, ls.last)
	}
	recs := ls.recs[:0]
	term := ls.terms[len(ls.terms)-1].term
	for _, e := range ents {
		if e.GetTerm() < term {
			return nil, fmt.Errorf("kvtool/cluster: raft entry %d has term %d, below the log's %d", e.GetIndex(), e.GetTerm(), term)
		}
		term = e.GetTerm()
		t, data := recordOf(e)
		recs = append(recs, segment.Entry{Index: e.GetIndex(), Term: e.GetTerm(), Type: t, Data: data})
	}
	// One batch: the Ready's entries share one write and one fsync.
	p, err := ls.log.EnqueueBatchAt(recs)
	clear(recs)
	ls.recs = recs[:0]
	if err != nil {
		return nil, fmt.Errorf("kvtool/cluster: append raft entries %d to %d: %w", first, ents[len(ents)-1].GetIndex(), err)
	}
	for _, e := range ents {
		ls.note(e)
	}
	return p, nil
}

// wake has the log's flusher goroutine write and sync the entries
// appended, while the caller does something else.
func (ls *logStore) wake() {
	ls.mu.Lock()
	log := ls.log
	ls.mu.Unlock()
	log.Wake()
}

// truncateAfter durably cuts every entry after last: the log is closed,
// cut (segment.TruncateAfter) and opened again. Rare (a follower whose
// uncommitted tail a new leader replaces), so its cost does not matter.
// ls.mu is held.
func (ls *logStore) truncateAfter(last uint64) error {
	if last < ls.st.SnapIndex || last < ls.hs.GetCommit() {
		return fmt.Errorf("kvtool/cluster: refusing to cut the raft log after %d: entries up to %d are committed", last, max(ls.st.SnapIndex, ls.hs.GetCommit()))
	}
	if err := ls.log.Close(); err != nil {
		return fmt.Errorf("kvtool/cluster: close raft log to cut it: %w", err)
	}
	if _, err := segment.TruncateAfter(ls.fs, ls.dir, last); err != nil {
		return fmt.Errorf("kvtool/cluster: %w", err)
	}
	if err := ls.openLog(); err != nil {
		return err
	}
	ls.cuts++
	cacheFirst := ls.last + 1 - uint64(len(ls.cache)) // the cache ends at ls.last
	keep := 0
	if last+1 > cacheFirst {
		keep = int(last + 1 - cacheFirst)
	}
	for _, e := range ls.cache[keep:] {
		ls.cacheBytes -= proto.Size(e)
	}
	ls.cache = ls.cache[:keep:keep]
	ls.last = last
	for len(ls.terms) > 1 && ls.terms[len(ls.terms)-1].first > last {
		ls.terms = ls.terms[:len(ls.terms)-1]
	}
	return nil
}

// setHardState records raft's hard state. A new term or vote is saved
// durably before it returns (raft must not send a message that depends on
// it before); a commit index alone is only remembered, as raft learns it
// again from the leader and the store's applied index bounds it at restart.
func (ls *logStore) setHardState(hs *pb.HardState) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	durable := hs.GetTerm() != ls.st.Term || hs.GetVote() != ls.st.Vote
	// A copy by hand: proto.Clone, once a Ready, was 3% of a member's CPU.
	ls.hs = &pb.HardState{Term: new(hs.GetTerm()), Vote: new(hs.GetVote()), Commit: new(hs.GetCommit())}
	if !durable {
		return nil
	}
	next := ls.st
	next.Term, next.Vote, next.Commit = hs.GetTerm(), hs.GetVote(), hs.GetCommit()
	return ls.saveLocked(&next)
}

// setConf records the membership in force after entry index, durably.
func (ls *logStore) setConf(cs *pb.ConfState, index uint64) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	next := ls.st
	next.Conf, next.ConfIndex, next.Commit = proto.Clone(cs).(*pb.ConfState), index, ls.hs.GetCommit()
	return ls.saveLocked(&next)
}

func (ls *logStore) saveLocked(next *raftState) error {
	if err := saveState(ls.fs, ls.dir, next); err != nil {
		return err
	}
	ls.st = *next
	return nil
}

// raiseCommit makes the initial hard state's commit index at least
// applied: the store applied only committed entries, and raft refuses an
// applied index above the commit index it starts with.
func (ls *logStore) raiseCommit(applied uint64) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if applied > ls.last {
		return fmt.Errorf("%w: the store has applied index %d but the raft log %s ends at %d (the raft log lost committed entries; restore the node from a peer)",
			ErrDamaged, applied, ls.dir, ls.last)
	}
	if applied > ls.hs.GetCommit() {
		ls.hs.Commit = new(applied)
	}
	return nil
}

// state returns a copy of the saved state.
func (ls *logStore) state() raftState {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.st
}

// close closes the log.
func (ls *logStore) close() error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.log.Close()
}

// Raft entry types as WAL records. The kind byte before a membership
// change's bytes says which raft message it is; it is part of the format.
const (
	confKindV1 byte = 1
	confKindV2 byte = 2
)

// recordOf maps a raft entry to the type and data of its WAL record.
func recordOf(e *pb.Entry) (format.FrameType, []byte) {
	switch e.GetType() {
	case pb.EntryConfChange:
		return format.FrameWALConf, append([]byte{confKindV1}, e.GetData()...)
	case pb.EntryConfChangeV2:
		return format.FrameWALConf, append([]byte{confKindV2}, e.GetData()...)
	}
	if len(e.GetData()) == 0 {
		return format.FrameWALNoop, nil
	}
	return format.FrameWALRaft, e.GetData()
}

// errBadRecord is wrapped for a raft log record that is no raft entry.
var errBadRecord = errors.New("kvtool/cluster: raft log record is not a raft entry")

// entryOf maps a WAL record back to a raft entry, copying its data.
func entryOf(r segment.Entry, dir string) (*pb.Entry, error) {
	e := &pb.Entry{Index: new(r.Index), Term: new(r.Term)}
	switch {
	case r.Type == format.FrameWALNoop && len(r.Data) == 0:
		e.Type = pb.EntryNormal.Enum()
	case r.Type == format.FrameWALRaft && len(r.Data) > 0:
		e.Type, e.Data = pb.EntryNormal.Enum(), append([]byte(nil), r.Data...)
	case r.Type == format.FrameWALConf && len(r.Data) > 0 && r.Data[0] == confKindV1:
		e.Type, e.Data = pb.EntryConfChange.Enum(), append([]byte(nil), r.Data[1:]...)
	case r.Type == format.FrameWALConf && len(r.Data) > 0 && r.Data[0] == confKindV2:
		e.Type, e.Data = pb.EntryConfChangeV2.Enum(), append([]byte(nil), r.Data[1:]...)
	default:
		return nil, fmt.Errorf("%w: %s: entry %d has type %d and %d bytes", errBadRecord, filepath.Clean(dir), r.Index, r.Type, len(r.Data))
	}
	return e, nil
}

// compact makes entry index the raft snapshot the log starts after, then
// drops the whole segments below it. The order is what makes a crash
// harmless: STATE first records the new snapshot (its term and the
// membership then), so a restart reads the log from index+1 and skips
// whatever older records are still on disk; then segments wholly at or
// below index go, oldest first (segment.Log.DropBefore). The membership at
// index must be the one in force (index at or after the last applied
// membership change): callers clamp to confIndex. It returns the segments
// removed.
func (ls *logStore) compact(index uint64) ([]string, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if index <= ls.st.SnapIndex {
		return nil, nil
	}
	if index > ls.last || index > ls.hs.GetCommit() || index < ls.st.ConfIndex {
		err := fmt.Errorf("kvtool/cluster: compact raft log %s to %d: the log ends at %d, commit %d, last membership change %d",
			ls.dir, index, ls.last, ls.hs.GetCommit(), ls.st.ConfIndex)
		return nil, err
	}
	k := sort.Search(len(ls.terms), func(k int) bool { return ls.terms[k].first > index }) - 1
	next := ls.st
	next.SnapIndex, next.SnapTerm = index, ls.terms[k].term
	next.SnapConf = proto.Clone(ls.st.Conf).(*pb.ConfState)
	next.Commit = ls.hs.GetCommit()
	if err := ls.saveLocked(&next); err != nil {
		return nil, err
	}
	ls.terms = append([]termRun{{index, ls.terms[k].term}}, ls.terms[k+1:]...)
	ls.compactions++
	dropped, err := ls.log.DropBefore(index + 1)
	if err != nil {
		return dropped, fmt.Errorf("kvtool/cluster: drop raft log segments before %d: %w", index+1, err)
	}
	return dropped, nil
}

// logBytesAfter is what keeping the log after index costs on disk: the
// segments holding any entry after it.
func (ls *logStore) logBytesAfter(index uint64) int64 {
	ls.mu.Lock()
	log := ls.log
	ls.mu.Unlock()
	n := int64(0)
	for _, seg := range log.Segments() {
		if seg.LastIndex > index || seg.Records == 0 {
			n += seg.Size
		}
	}
	return n
}

// staleLog reports whether the log on disk is from before an installed
// snapshot: it neither starts right after the snapshot nor holds the
// snapshot's entry with its term (a log that does continues it, as after
// a compaction). An install records the snapshot in STATE before it
// discards the log, so a crash in between leaves such a log.
func (ls *logStore) staleLog() (bool, error) {
	snap, first, last := ls.st.SnapIndex, ls.log.FirstIndex(), ls.log.LastIndex()
	switch {
	case first == snap+1:
		return false, nil
	case snap < first || snap > last:
		return true, nil
	}
	r, err := ls.log.NewReader(snap)
	if err != nil {
		return false, err
	}
	defer r.Close()
	re, err := r.Next()
	if err != nil {
		return false, fmt.Errorf("kvtool/cluster: read raft log entry %d: %w", snap, err)
	}
	return re.Index != snap || re.Term != ls.st.SnapTerm, nil
}

// discardLog removes every segment of the log (oldest first, so a crash
// leaves a contiguous suffix, still stale) and starts an empty log after
// the snapshot. ls.mu is held, or the store is not shared yet.
func (ls *logStore) discardLog() error {
	if err := ls.log.Close(); err != nil && !errors.Is(err, segment.ErrClosed) {
		return fmt.Errorf("kvtool/cluster: close raft log to discard it: %w", err)
	}
	names, err := ls.fs.List(ls.dir)
	if err != nil {
		return fmt.Errorf("kvtool/cluster: list %s: %w", ls.dir, err)
	}
	for _, name := range names {
		if _, ok := format.ParseSegmentName(name); !ok {
			continue
		}
		if err := ls.fs.Remove(filepath.Join(ls.dir, name)); err != nil {
			return fmt.Errorf("kvtool/cluster: discard raft log segment %s: %w", name, err)
		}
		if err := ls.fs.SyncDir(ls.dir); err != nil {
			return fmt.Errorf("kvtool/cluster: fsync %s: %w", ls.dir, err)
		}
	}
	if err := ls.openLog(); err != nil {
		return err
	}
	snap := ls.st.SnapIndex
	ls.last, ls.terms = snap, []termRun{{snap, ls.st.SnapTerm}}
	ls.cache, ls.cacheBytes = nil, 0
	ls.hs.Commit = new(max(ls.hs.GetCommit(), snap))
	return nil
}

// installSnapshot records raft snapshot md as the one the log starts
// after (its term and membership, which is also the membership in force),
// durably, then discards the whole log: raft hands a snapshot to install
// only when the log does not hold its entry with its term, so nothing in
// the log continues it. Saving STATE first is the install's commit point
// (see snapshot.go).
func (ls *logStore) installSnapshot(md *pb.SnapshotMetadata) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	idx := md.GetIndex()
	if idx <= ls.st.SnapIndex {
		return fmt.Errorf("kvtool/cluster: install raft snapshot %d over snapshot %d: snapshots never go back", idx, ls.st.SnapIndex)
	}
	next := ls.st
	next.SnapIndex, next.SnapTerm = idx, md.GetTerm()
	next.SnapConf = proto.Clone(md.GetConfState()).(*pb.ConfState)
	next.Conf, next.ConfIndex = proto.Clone(md.GetConfState()).(*pb.ConfState), idx
	next.Commit = max(idx, ls.hs.GetCommit())
	if err := ls.saveLocked(&next); err != nil {
		return err
	}
	return ls.discardLog()
}
