package xferstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/vfs"
)

// StoreSourceOptions configure NewStoreSource.
type StoreSourceOptions struct {
	FS vfs.FS // the file system the store is on; default vfs.Default
	// LeaseTTL is how long a peer's lease outlives its last renewal: how
	// long a receiver whose connection broke has to come back and resume.
	// Default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// ReuseBase lets a new snapshot be the manifest's base checkpoint
	// rather than a checkpoint written for the transfer, when the WAL
	// after the base is at most this many bytes (the receiver gets it as
	// the tail). Writing a checkpoint costs the source CPU and disk while
	// it serves; the base is usually recent, since serve compacts. Default
	// DefaultReuseBase; negative: always write a new checkpoint.
	ReuseBase int64
	// ReuseShare bounds that tail by the base's own size as well: the
	// base is reused only while the WAL after it is at most this share
	// of the base's bytes, so a receiver never replays more log than the
	// checkpoint it gets is worth (without it, a base of 23 MB was reused
	// with up to 64 MiB after it). Measured on a cluster's join (a 23 MB
	// base, log entries of about 520 bytes): the receiver spends some 6
	// µs of CPU per tail entry (receive, replay, log), about 0.25 CPU-s
	// for a tail as large as the base, while a new checkpoint costs the
	// source, the node that keeps serving, about 0.15 CPU-s and its
	// paced write (0.7 s at 32 MiB/s) before the first chunk moves; the
	// default, DefaultReuseShare, writes one once the tail outweighs the
	// base. Negative: no bound but ReuseBase.
	ReuseShare float64
}

// DefaultReuseBase is StoreSourceOptions.ReuseBase's default.
const DefaultReuseBase = 64 << 20

// DefaultReuseShare is StoreSourceOptions.ReuseShare's default.
const DefaultReuseShare = 1.0

// DefaultLeaseTTL is StoreSourceOptions.LeaseTTL's default.
const DefaultLeaseTTL = 2 * time.Minute

// StoreSource is a Source over a live store. A new snapshot is a
// checkpoint the store writes while it keeps serving (Store.Checkpoint, or
// the manifest's base if it is current); each peer holds a store lease on
// the checkpoint file and the WAL after it, visible in Store.Leases, that
// compaction respects. The tail is the store's WAL, read as entries
// become durable. Safe for concurrent sessions.
type StoreSource struct {
	st   *store.Store
	opts StoreSourceOptions

	mu     sync.Mutex
	parked map[format.XferSnapshotID]*store.Lease // kept for receivers that may resume
}

// NewStoreSource returns a Source over st, which must be open for writing
// (or as a replica).
func NewStoreSource(st *store.Store, opts StoreSourceOptions) *StoreSource {
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.ReuseBase == 0 {
		opts.ReuseBase = DefaultReuseBase
	}
	if opts.ReuseShare == 0 {
		opts.ReuseShare = DefaultReuseShare
	}
	return &StoreSource{st: st, opts: opts, parked: map[format.XferSnapshotID]*store.Lease{}}
}

// transfer.Identity describes the store.
func (s *StoreSource) Identity() transfer.Identity {
	m := s.st.CurrentManifest()
	return transfer.Identity{StoreID: m.StoreID, Epoch: m.Epoch, Term: s.st.Log().Term(), SegmentSize: m.SegmentSize}
}

// LastIndex is the store's applied index: every entry up to it is durable.
func (s *StoreSource) LastIndex() uint64 { return s.st.Snapshot().Index() }

// errPinRace says compaction removed what was about to be pinned; pinning
// a fresh checkpoint again is the remedy.
var errPinRace = errors.New("kvtool/xferstore: the checkpoint or its log went away while being pinned")

// Pin pins the snapshot req.Want if the store still has its checkpoint and
// its log from req.TailFrom, else a checkpoint of the current state.
func (s *StoreSource) Pin(ctx context.Context, req transfer.PinRequest) (transfer.Snapshot, error) {
	s.prune()
	if !req.Want.IsZero() {
		if snap, err := s.reuse(req); err == nil {
			return snap, nil
		}
	}
	for attempt := 0; ; attempt++ {
		info, err := s.checkpoint(ctx)
		if err != nil {
			return nil, err
		}
		snap, err := s.pinFile(req.Peer, info, info.Meta.Index+1)
		if err == nil || !errors.Is(err, errPinRace) || attempt == 2 {
			return snap, err
		}
	}
}

// checkpoint chooses a new snapshot: the manifest's base if the WAL after
// it is short enough to send as the tail, else a checkpoint of the current
// state (or the base, if it already is one).
func (s *StoreSource) checkpoint(ctx context.Context) (checkpoint.Info, error) {
	if info, ok := s.recentBase(); ok {
		return info, nil
	}
	info, err := s.st.Checkpoint(ctx)
	if errors.Is(err, store.ErrNothingToDo) {
		if m := s.st.CurrentManifest(); m.Base != nil && len(m.Deltas) == 0 {
			return checkpoint.ReadInfo(s.opts.FS, s.snapPath(m.Base.Name))
		}
	}
	if err != nil {
		return info, fmt.Errorf("kvtool/xferstore: checkpoint the store: %w", err)
	}
	return info, nil
}

// recentBase returns the manifest's base if the WAL still holds every
// entry after it and those entries take at most reuseLimit bytes.
func (s *StoreSource) recentBase() (checkpoint.Info, bool) {
	m := s.st.CurrentManifest()
	if m.Base == nil || s.opts.ReuseBase < 0 || m.WALFirstIndex > m.Base.Index+1 || s.st.Log().FirstIndex() > m.Base.Index+1 {
		return checkpoint.Info{}, false
	}
	if s.st.Log().BytesAfter(m.Base.Index) > s.reuseLimit(m.Base.Size) {
		return checkpoint.Info{}, false
	}
	info, err := checkpoint.ReadInfo(s.opts.FS, s.snapPath(m.Base.Name))
	return info, err == nil
}

// reuseLimit is the most WAL bytes a base of size bytes is reused with:
// ReuseBase, and ReuseShare of size but never less than reuseFloor.
func (s *StoreSource) reuseLimit(size int64) int64 {
	limit := s.opts.ReuseBase
	if s.opts.ReuseShare > 0 {
		limit = min(limit, max(reuseFloor, int64(float64(size)*s.opts.ReuseShare)))
	}
	return limit
}

// reuseFloor is the least ReuseShare bounds the tail to: so short a tail
// costs a receiver little (some 10 ms of CPU), and segment.Log.BytesAfter
// may count up to a quarter of it too many.
const reuseFloor = 1 << 20

func (s *StoreSource) snapPath(name string) string {
	return filepath.Join(s.st.Dir(), format.SnapDir, name)
}

// reuse pins the checkpoint a receiver holds part of, if it is still there
// with its log from req.TailFrom.
func (s *StoreSource) reuse(req transfer.PinRequest) (transfer.Snapshot, error) {
	info, err := checkpoint.ReadInfo(s.opts.FS, s.snapPath(format.CheckpointName(req.Want.Index)))
	if err != nil {
		return nil, err
	}
	if info.Meta.StoreID != s.st.StoreID() || info.Meta.Term != req.Want.Term || info.Checksum != req.Want.Checksum {
		return nil, errPinRace
	}
	snap, err := s.pinFile(req.Peer, info, req.TailFrom)
	if err == nil {
		s.unpark(req.Want)
	}
	return snap, err
}

// pinFile leases the checkpoint info and the log from tailFrom for peer,
// then checks that both are still there (compaction may have run since the
// checkpoint was written or chosen).
func (s *StoreSource) pinFile(peer string, info checkpoint.Info, tailFrom uint64) (transfer.Snapshot, error) {
	rel := store.SnapPath(info.Name)
	lease := s.st.AcquireLease(peer, tailFrom-1, []string{rel}, s.opts.LeaseTTL)
	f, err := s.opts.FS.Open(s.snapPath(info.Name))
	if err != nil {
		lease.Release()
		if vfs.IsNotExist(err) {
			return nil, errPinRace
		}
		return nil, fmt.Errorf("kvtool/xferstore: %w", err)
	}
	if err := s.checkLog(tailFrom); err != nil {
		f.Close()
		lease.Release()
		return nil, err
	}
	id := format.XferSnapshotID{Index: info.Meta.Index, Term: info.Meta.Term, Checksum: info.Checksum}
	return &storeSnap{src: s, peer: peer, id: id, size: info.Size, f: f, rel: rel, lease: lease,
		index: tailFrom - 1, needFile: true}, nil
}

// checkLog checks that the WAL still holds every entry from tailFrom on.
func (s *StoreSource) checkLog(tailFrom uint64) error {
	if first := s.st.Log().FirstIndex(); first > tailFrom {
		return fmt.Errorf("%w: the WAL starts at %d, entry %d is needed", errPinRace, first, tailFrom)
	}
	return nil
}

// PinLog pins the log after index after for a receiver whose store ends
// there.
func (s *StoreSource) PinLog(ctx context.Context, peer string, after uint64) (transfer.Snapshot, error) {
	s.prune()
	if last := s.st.LastIndex(); after > last {
		return nil, fmt.Errorf("%w: %s's log runs to %d, past this store's %d: the two histories differ",
			transfer.ErrStoreMismatch, peer, after, last)
	}
	lease := s.st.AcquireLease(peer, after, nil, s.opts.LeaseTTL)
	if err := s.checkLog(after + 1); err != nil {
		lease.Release()
		return nil, fmt.Errorf("%w: %v", transfer.ErrTooFarBehind, err)
	}
	s.unparkLogs(after)
	return &storeSnap{src: s, peer: peer, id: format.XferSnapshotID{Index: after}, lease: lease, index: after}, nil
}

// unparkLogs releases the parked leases of log-only sessions that a
// session from after supersedes: a follower that reconnected.
func (s *StoreSource) unparkLogs(after uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, l := range s.parked {
		if id.Checksum == 0 && id.Index <= after {
			l.Release()
			delete(s.parked, id)
		}
	}
}

// park keeps a lease for a receiver that may come back, until it expires.
func (s *StoreSource) park(id format.XferSnapshotID, l *store.Lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.parked[id]; old != nil {
		old.Release()
	}
	s.parked[id] = l
}

func (s *StoreSource) unpark(id format.XferSnapshotID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.parked[id]; l != nil {
		l.Release()
		delete(s.parked, id)
	}
}

// prune releases parked leases that expired, so they leave Store.Leases.
func (s *StoreSource) prune() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, l := range s.parked {
		if !l.Active() {
			l.Release()
			delete(s.parked, id)
		}
	}
}

// transfer.Tail reads the store's WAL from index from on.
func (s *StoreSource) Tail(ctx context.Context, from uint64) (transfer.Tail, error) {
	return &storeTail{st: s.st, next: from}, nil
}

// storeSnap is a pinned checkpoint (or, for PinLog, just the log).
type storeSnap struct {
	src  *StoreSource
	peer string
	id   format.XferSnapshotID
	size int64
	f    vfs.File // nil for PinLog
	rel  string

	mu       sync.Mutex
	lease    *store.Lease
	index    uint64
	needFile bool
}

func (p *storeSnap) ID() format.XferSnapshotID { return p.id }
func (p *storeSnap) Size() int64               { return p.size }

func (p *storeSnap) ReadAt(b []byte, off int64) (int, error) {
	if p.f == nil {
		return 0, io.EOF
	}
	return p.f.ReadAt(b, off)
}

// Retain renews the lease, moving it up to index (and off the checkpoint
// file once the receiver no longer needs it) by taking a new lease before
// releasing the old one, so nothing is unpinned in between.
func (p *storeSnap) Retain(index uint64, needFile bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	needFile = needFile && p.needFile
	if index <= p.index && needFile == p.needFile {
		p.lease.Renew(p.src.opts.LeaseTTL)
		return
	}
	var files []string
	if needFile {
		files = []string{p.rel}
	}
	old := p.lease
	p.lease = p.src.st.AcquireLease(p.peer, max(index, p.index), files, p.src.opts.LeaseTTL)
	p.index, p.needFile = max(index, p.index), needFile
	old.Release()
}

// Release drops the lease, or parks it until it expires for a receiver
// that may come back: to resume the snapshot, or as a follower to catch up
// (the log after what it holds must outlive compaction meanwhile).
func (p *storeSnap) Release(done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f != nil {
		p.f.Close()
	}
	if done {
		p.lease.Release()
		return
	}
	p.lease.Renew(p.src.opts.LeaseTTL)
	id := p.id
	if p.size == 0 || !p.needFile {
		id = format.XferSnapshotID{Index: p.index} // a follower: what it needs is the log after p.index
	}
	p.src.park(id, p.lease)
}

// storeTail reads a live store's WAL. A segment.Reader stops at the
// durable index it was given, so at the end the tail waits for the store
// to publish the next entry and lets the same reader follow the log there
// (segment.Reader.Follow): it goes on from where it stopped instead of
// rescanning its segment.
type storeTail struct {
	st   *store.Store
	next uint64
	r    *segment.Reader
}

func (t *storeTail) Next(ctx context.Context) (segment.Entry, error) {
	for {
		if t.r == nil {
			if err := t.open(ctx); err != nil {
				return segment.Entry{}, err
			}
		}
		e, err := t.r.Next()
		if err == io.EOF {
			if err := t.follow(ctx); err != nil {
				return segment.Entry{}, err
			}
			continue
		} else if err != nil {
			return e, err
		}
		if e.Index != t.next {
			return e, fmt.Errorf("%w: the WAL holds entry %d where %d was expected (compacted away?)", transfer.ErrTooFarBehind, e.Index, t.next)
		}
		t.next++
		return e, nil
	}
}

// open waits until entry next is published and durable (a cluster
// member's store publishes before its WAL's fsync) and opens a reader
// from it.
func (t *storeTail) open(ctx context.Context) error {
	if err := t.st.WaitApplied(ctx, t.next); err != nil {
		return err
	}
	if err := t.st.WaitDurable(ctx, t.next); err != nil {
		return err
	}
	r, err := t.st.Log().NewReader(t.next)
	if err != nil {
		return fmt.Errorf("kvtool/xferstore: read the WAL from %d: %w", t.next, err)
	}
	t.r = r
	return nil
}

// follow waits until entry next is published and durable (a cluster
// member's store publishes before its WAL's fsync) and lets the reader go
// on to the durable index.
func (t *storeTail) follow(ctx context.Context) error {
	if err := t.st.WaitApplied(ctx, t.next); err != nil {
		return err
	}
	if err := t.st.WaitDurable(ctx, t.next); err != nil {
		return err
	}
	if err := t.r.Follow(t.st.Log().DurableIndex()); err != nil {
		return fmt.Errorf("kvtool/xferstore: follow the WAL from %d: %w", t.next, err)
	}
	return nil
}

func (t *storeTail) Close() error {
	if t.r != nil {
		return t.r.Close()
	}
	return nil
}
