package store

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/replay"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// DefaultShards is the shard count of a new data directory.
const DefaultShards = 16

var (
	// ErrFailed is returned (wrapped) by every commit after the WAL failed
	// (a write or fsync error): the store stops acknowledging anything and
	// must be reopened, which recovers from what is durable.
	ErrFailed = errors.New("kvtool/store: store failed after a WAL error; restart it to recover")
	// ErrClosed is returned by commits after Close.
	ErrClosed = errors.New("kvtool/store: store is closed")
	// ErrReadOnly is returned by commits on a store opened ReadOnly.
	ErrReadOnly = errors.New("kvtool/store: store is open read-only")
	// ErrNoDataDir is returned (wrapped) by Open with Create unset when the
	// directory is not an initialised data directory.
	ErrNoDataDir = errors.New("kvtool/store: not a kvtool data directory")
	// ErrNoSpace is returned (wrapped) by commits while the disk has no room
	// for the WAL's next segment. Nothing was logged or changed; the store
	// keeps serving reads and takes commits again once there is space.
	ErrNoSpace = segment.ErrNoSpace
)

// Options configure Open.
type Options struct {
	FS          vfs.FS // default vfs.Default
	Dir         string // the data directory
	Create      bool   // initialise the directory if it is missing or empty
	Shards      int    // shard count of a new directory (default 16); ignored for an existing one
	SegmentSize int64  // WAL rotation threshold; default: the one recorded at init (itself defaulting to segment.DefaultSegmentSize)
	// ReadOnly opens the directory for reading only: no WAL is opened for
	// writing, a torn tail is read up to but never cut, nothing is created
	// or written except the lock file, and Commit fails with ErrReadOnly.
	ReadOnly bool
	// Replica opens the store as a read replica: Commit fails with
	// ErrReplica and the log grows only through ApplyEntry.
	Replica bool
	// MaxLeaseBytes caps what one peer's lease may keep on disk
	// (default DefaultMaxLeaseBytes).
	MaxLeaseBytes int64
	// MaintenanceRate, if set, makes checkpoints, deltas and merges run on
	// one core and write at most this many bytes of entries per second, so
	// they leave the CPU and the disk to readers and writers (a serving
	// store). 0 writes as fast as the machine allows (offline commands).
	MaintenanceRate int64
	// MaintenanceShare, with MaintenanceRate, also paces maintenance by
	// the time it works: at most this share of the wall time, measured
	// while it scans, compresses and writes (0: DefaultMaintenanceShare;
	// 1 or more: bytes only). See checkpoint.Options.BusyShare.
	MaintenanceShare float64
	// WALSyncInterval, if positive, syncs the WAL at most once per
	// interval (segment.Options.SyncInterval). Only for a cluster member's
	// store, which ApplyTxnAt publishes before the WAL's fsync (its raft
	// log holds every entry durably): its fsyncs then leave the disk to the
	// raft log's. Elsewhere it would delay every commit.
	WALSyncInterval time.Duration
	// Base, if set, is the manifest's base checkpoint already decoded
	// (see BaseBlocks): recovery takes its state from it instead of
	// reading the file, when it is that checkpoint (same index and
	// whole-file checksum); otherwise it is ignored. Open consumes it.
	Base *BaseBlocks
}

// DefaultMaintenanceShare is the share of the wall time maintenance works
// for beside a serving store. Paced by bytes alone (32 MiB/s), writing
// checkpoints back to back took a third of a core and up to half of the
// commits on two loaded cores (BenchmarkCheckpointInterference).
const DefaultMaintenanceShare = 0.2

// Store is a durable, sharded key-value store. Readers call Snapshot and
// never wait; writers call Commit.
type Store struct {
	fs   vfs.FS
	dir  string
	lock io.Closer
	man  *manifest.Manifest
	log  *segment.Log

	root atomic.Pointer[Snapshot] // the published state

	// Writer side. gates[i] serializes the staging of shard i; staged[i] is
	// the newest version of shard i, possibly logged but not yet durable,
	// and lastIdx[i] the index of the entry that produced it. Both are
	// guarded by gates[i].
	gates   []chan struct{}
	staged  []*tree
	lastIdx []uint64

	batcher committer // stages Commit's transactions in batches (batch.go)

	// Publication side, guarded by pubMu.
	pubMu sync.Mutex
	queue map[uint64]*logged // logged entries waiting to be published
	// elsewhere is the last entry ApplyTxnAt logged: a cluster's entry,
	// durable in its raft log, so published before the WAL's fsync;
	// elsewhereP is its WAL record (maintenance waits for it, see
	// syncPublished).
	elsewhere  uint64
	elsewhereP *segment.Pending
	failed     error
	// failedFlag mirrors failed != nil for the commit path's check without
	// taking pubMu.
	failedFlag atomic.Bool
	pubCh      chan struct{} // closed and replaced at every publication (WaitApplied)

	// closeMu is held shared by every commit and exclusively by Close, so
	// Close waits for in-flight commits and later ones see closed.
	closeMu sync.RWMutex
	closed  bool

	manMu     sync.Mutex         // guards man
	maintMu   sync.Mutex         // serializes checkpoint, delta, merge, compact
	maintOpts checkpoint.Options // how maintenance writes files (Options.MaintenanceRate)
	replMu    sync.Mutex         // serializes ApplyEntry
	leases    leases             // retention leases of peers
	replica   bool               // opened as a read replica: Commit refuses

	walObserver atomic.Pointer[func(segment.SyncStats)] // see ObserveWAL

	// checkWaitHook, if set (by tests), is called when a failed check must
	// wait for the entry at the given index to become durable.
	checkWaitHook func(idx uint64)
	// leadHook, if set (by tests), is called when a goroutine leads a
	// batch, before it takes the queued requests.
	leadHook func()
	// queueHook, if set (by tests), is called after the batch committer's
	// queue changed (a request queued, the queue taken, abandoned requests
	// dropped), so a test waits for a queue length as an event.
	queueHook func()
	// syncWaitHook, if set (by tests), is called when maintenance must wait
	// for the WAL to be durable through a published index (syncPublished).
	syncWaitHook func(idx uint64)

	readOnly bool // opened ReadOnly: log is nil
	tornTail bool // a ReadOnly open stopped at a torn WAL tail
}

// logged is a transaction whose WAL record is written (maybe not yet
// durable) and whose shard versions wait to be published.
type logged struct {
	// first and last are the indexes of its entries: one transaction's
	// (last 0: first only), or a batch's, published together.
	first, last uint64
	shards      []int
	trees       []*tree
}

// Open opens (and with Create, initialises) the data directory, recovers its
// state from the WAL, and returns a running store. It holds the directory's
// lock until Close.
func Open(opts Options) (*Store, error) {
	s := &Store{fs: opts.FS, dir: opts.Dir, queue: map[uint64]*logged{},
		pubCh: make(chan struct{}), replica: opts.Replica}
	s.maintOpts = checkpoint.Options{Background: opts.MaintenanceRate > 0, BytesPerSec: opts.MaintenanceRate,
		BusyShare: cmp.Or(opts.MaintenanceShare, DefaultMaintenanceShare)}
	s.leases.maxLen = opts.MaxLeaseBytes
	if s.leases.maxLen <= 0 {
		s.leases.maxLen = DefaultMaxLeaseBytes
	}
	if s.fs == nil {
		s.fs = vfs.Default
	}
	if err := s.lockDir(opts.Create && !opts.ReadOnly); err != nil {
		return nil, err
	}
	if err := s.open(opts); err != nil {
		s.lock.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) lockDir(create bool) error {
	if create {
		if err := format.MkdirAllDurable(s.fs, s.dir); err != nil {
			return fmt.Errorf("create data directory %s: %w", s.dir, err)
		}
	} else if _, err := s.fs.Stat(s.dir); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNoDataDir, s.dir, err)
	}
	lock, err := s.fs.Lock(filepath.Join(s.dir, format.LockName))
	if err != nil {
		return fmt.Errorf("data directory %s is in use: %w", s.dir, err)
	}
	s.lock = lock
	return nil
}

func (s *Store) open(opts Options) error {
	man, err := s.loadManifest(opts)
	if err != nil {
		return err
	}
	s.man = man
	walDir := filepath.Join(s.dir, format.WALDir)
	if opts.ReadOnly {
		s.readOnly = true
		return s.recover(walDir, opts.Base)
	}
	if err := s.prepareDirs(walDir); err != nil {
		return err
	}
	segSize := opts.SegmentSize
	if segSize <= 0 {
		segSize = man.SegmentSize
	}
	// Opening the WAL reads the newest segment's preallocated remainder
	// to prove it zero (up to a segment), and loading the snapshot files
	// decodes the base and deltas: they read different files and share
	// nothing, so they run at once (a checkpoint open spent about a tenth
	// of its CPU in that check, on one core, before its load began).
	snap := s.loadSnapshotAsync(opts.Base)
	s.log, err = segment.Open(segment.Options{
		FS: s.fs, Dir: walDir, SegmentSize: segSize, StoreID: man.StoreID,
		FirstIndex: man.WALFirstIndex, RepairTail: true, OnDurable: s.onDurable, OnSync: s.onSync,
		SyncInterval: opts.WALSyncInterval,
		// A replica that joins by snapshot restarts its WAL (SkipTo)
		// before it fills a segment: a spare prepared at open would be
		// removed unused.
		LazySpare: opts.Replica,
	})
	ld, snapErr := snap()
	if err != nil {
		return fmt.Errorf("open WAL: %w", err)
	}
	if snapErr != nil {
		s.log.Close()
		return snapErr
	}
	if err := s.skipStaleWAL(); err != nil {
		s.log.Close()
		return err
	}
	if err := s.finishRecover(walDir, ld); err != nil {
		s.log.Close()
		return err
	}
	return nil
}

// snapshotLoad is the state the snapshot files (base and deltas) hold,
// loaded and not yet published.
type snapshotLoad struct {
	l     *loader
	chain replay.Chain
}

// loadSnapshot loads the manifest's base and deltas.
func (s *Store) loadSnapshot(base *BaseBlocks) (snapshotLoad, error) {
	l := newLoader(s.man.Shards)
	l.pre = base
	chain, err := replay.Snapshot(s.fs, s.dir, s.man, 0, l)
	if err != nil {
		return snapshotLoad{}, fmt.Errorf("recover %s: %w", s.dir, err)
	}
	return snapshotLoad{l: l, chain: chain}, nil
}

// loadSnapshotAsync starts loadSnapshot on its own goroutine and returns
// what waits for it; the caller always waits (nothing of the load runs
// once Open has returned).
func (s *Store) loadSnapshotAsync(base *BaseBlocks) func() (snapshotLoad, error) {
	var ld snapshotLoad
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		ld, err = s.loadSnapshot(base)
	}()
	return func() (snapshotLoad, error) {
		<-done
		return ld, err
	}
}

// prepareDirs readies a writable open: DATA/wal and DATA/snap exist
// durably (a process killed between a mkdir and its fsync may have left
// either one existing but not durable, so their entries are synced even
// when found), and the temporary files a killed publish left in DATA and
// DATA/snap are removed, durably. The WAL's own leftovers are the log's
// to remove. Only a writable open calls this: a read-only one changes
// nothing.
func (s *Store) prepareDirs(walDir string) error {
	for _, d := range []string{walDir, s.snapDir()} {
		if err := format.MkdirAllDurable(s.fs, d); err != nil {
			return fmt.Errorf("kvtool/store: %w", err)
		}
	}
	for _, d := range []string{s.dir, s.snapDir()} {
		if _, err := format.RemoveTemps(s.fs, d); err != nil {
			return fmt.Errorf("kvtool/store: %w", err)
		}
	}
	return nil
}

// replayWAL applies the WAL from index from. A writable store reads
// through its open log, whose reader stops at the log's end: segment.Open
// has already checked the newest segment's preallocated remainder, and a
// fresh reader would read all of it (up to the segment size) again. A
// read-only store has no open log and stops at a torn tail instead.
func (s *Store) replayWAL(walDir string, from uint64, t replay.Target) (replay.Result, error) {
	if s.log == nil {
		return replay.WAL(s.fs, walDir, from, 0, t, replay.WALOptions{StopAtTornTail: true})
	}
	r, err := s.log.NewReader(from)
	if err != nil {
		return replay.Result{AppliedIndex: from - 1}, err
	}
	defer r.Close()
	return replay.Entries(r, walDir, from, 0, t)
}

// loadManifest loads the manifest, or with Create initialises a new
// directory: a fresh store ID and shard count, published before any WAL
// segment exists.
func (s *Store) loadManifest(opts Options) (*manifest.Manifest, error) {
	man, err := manifest.Load(s.fs, s.dir)
	if err == nil || !errors.Is(err, manifest.ErrNotFound) {
		return man, err
	}
	if !opts.Create || opts.ReadOnly {
		return nil, fmt.Errorf("%w: %s has no %s (create it with `kvtool serve` or `kvtool put`)", ErrNoDataDir, s.dir, format.ManifestName)
	}
	if segs, _ := s.fs.List(filepath.Join(s.dir, format.WALDir)); len(segs) > 0 {
		return nil, fmt.Errorf("%s has WAL files but no %s: refusing to initialise over them (run `kvtool verify`)", s.dir, format.ManifestName)
	}
	shards := opts.Shards
	if shards <= 0 {
		shards = DefaultShards
	}
	segSize := opts.SegmentSize
	if segSize <= 0 {
		segSize = segment.DefaultSegmentSize
	}
	man = &manifest.Manifest{StoreID: manifest.NewStoreID(), Shards: shards, Epoch: 1, WALFirstIndex: 1, SegmentSize: segSize}
	if err := manifest.Publish(s.fs, s.dir, man); err != nil {
		return nil, fmt.Errorf("initialise %s: %w", s.dir, err)
	}
	return man, nil
}

// recover rebuilds the state from the manifest's base and deltas and the
// WAL tail, and publishes it. Keys changed by the WAL tail are the dirty set:
// the next delta must cover them.
func (s *Store) recover(walDir string, base *BaseBlocks) error {
	ld, err := s.loadSnapshot(base)
	if err != nil {
		return err
	}
	return s.finishRecover(walDir, ld)
}

// finishRecover replays the WAL after the loaded snapshot files and
// publishes the state (recover's second half).
func (s *Store) finishRecover(walDir string, ld snapshotLoad) error {
	l, chain := ld.l, ld.chain
	res, err := s.replayWAL(walDir, chain.Index+1, l)
	if err != nil {
		return fmt.Errorf("recover %s: %w", s.dir, err)
	}
	s.tornTail = res.TornTail
	if s.log != nil && res.AppliedIndex != s.log.LastIndex() {
		return fmt.Errorf("recover %s: the snapshot files and WAL end at index %d but the WAL's last index is %d (run `kvtool verify`)",
			s.dir, res.AppliedIndex, s.log.LastIndex())
	}
	trees := l.build()
	n := s.man.Shards
	s.gates = make([]chan struct{}, n)
	s.lastIdx = make([]uint64, n)
	s.staged = trees
	for i := range s.gates {
		s.gates[i] = make(chan struct{}, 1)
		s.lastIdx[i] = res.AppliedIndex
	}
	s.root.Store(&Snapshot{index: res.AppliedIndex, shards: append([]*tree(nil), trees...)})
	return nil
}

// Snapshot returns the published state. It never blocks.
func (s *Store) Snapshot() *Snapshot { return s.root.Load() }

// Get reads key from the published state.
func (s *Store) Get(key string) ([]byte, bool) { return s.Snapshot().Get(key) }

// DurableIndex is the highest index known durable in the WAL (for a
// read-only store, the applied index).
func (s *Store) DurableIndex() uint64 {
	if s.log == nil {
		return s.Snapshot().Index()
	}
	return s.log.DurableIndex()
}

// Log returns the store's WAL (for status and maintenance); nil for a store
// opened ReadOnly.
func (s *Store) Log() *segment.Log { return s.log }

// ReadOnly reports whether the store was opened ReadOnly, and whether that
// open stopped at a torn WAL tail (which a writable open would cut).
func (s *Store) ReadOnly() (readOnly, tornTail bool) { return s.readOnly, s.tornTail }

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// Err returns the error that failed the store, or nil.
func (s *Store) Err() error {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	return s.failed
}

// indexRange is a range of log indexes [from, to]; the zero value is empty.
type indexRange struct{ from, to uint64 }

// Rotate seals the active WAL segment and starts a new one.
func (s *Store) Rotate() error { return s.log.Rotate() }

// Close waits for in-flight commits, closes the WAL and releases the
// directory. Commits after Close fail with ErrClosed.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.log != nil {
		err = s.log.Close()
	}
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	return err
}
