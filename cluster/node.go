package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// Config configures a Node.
type Config struct {
	ID        uint64 // this member's raft ID, nonzero
	ClusterID uint64 // the cluster's ID, nonzero; fences out foreign peers and data
	// Peers are the founding voters (including ID). They are used only to
	// bootstrap a data directory that has no raft state yet; afterwards the
	// membership comes from the raft state and log.
	Peers []uint64
	// Join, if set, bootstraps a data directory without raft state as a
	// member that joins a running cluster (see PrepareJoin) instead of
	// from Peers.
	Join *JoinRecord

	FS  vfs.FS // default vfs.Default
	Dir string // the node's data directory; raft's log and state go in Dir/raft
	// Store is the node's store on Dir, opened with store.Options.Replica:
	// only this node applies to it. The node does not close it.
	Store     *store.Store
	Transport Transport // the node calls Handle on it, and closes it

	TickInterval   time.Duration // raft's clock; default 100ms
	ElectionTicks  int           // election timeout in ticks; default 10
	HeartbeatTicks int           // heartbeat interval in ticks; default 1
	LogSegmentSize int64         // raft log segment size; default DefaultLogSegmentSize
	LogCacheBytes  int           // raft log tail kept in memory; default DefaultCacheBytes
	// DedupWindow is how many log entries a client request ID is
	// remembered for (at least); default DefaultDedupWindow. Every node of
	// a cluster must use the same value.
	DedupWindow uint64
	// ProposalRetry is how long a request with a client ID waits before it
	// is proposed again (the first proposal may have been lost with a
	// leader); default twice the election timeout.
	ProposalRetry time.Duration
	// ReadRetry is how long one ReadIndex attempt waits for its answer
	// before a new attempt with a new context; default the election timeout.
	ReadRetry time.Duration

	// CompactInterval is how often the raft log is compacted after the
	// store's checkpoints (CompactLog); default 10s, negative: never.
	CompactInterval time.Duration
	// RetainEntries is how many entries behind the applied index a
	// compaction always keeps, so that a member a little behind catches up
	// from the log; default DefaultRetainEntries.
	RetainEntries uint64
	// RetainMaxBytes caps the raft log one peer's lease may keep on disk;
	// past it the lease is evicted and the peer gets a snapshot. Default
	// DefaultRetainMaxBytes.
	RetainMaxBytes int64
	// RetainTTL is how long a silent peer's lease lasts; default 10 minutes.
	RetainTTL time.Duration
	// SnapshotGrace is how long the log after a snapshot stays held once
	// the transfer ended, so that its member catches up from the log
	// instead of needing another snapshot; default one minute.
	SnapshotGrace time.Duration
	// Secret is the shared secret snapshot transfers are authenticated
	// with (StartMember sets it); without it a node neither sends nor
	// takes snapshots.
	Secret []byte
	// SnapshotChunk and SnapshotWindow are transfer/'s chunk size and
	// credit window for snapshot transfers (defaults transfer's).
	SnapshotChunk  int
	SnapshotWindow int64
	// SnapshotRate limits a snapshot transfer's bytes per second (0: no
	// limit).
	SnapshotRate int64
	// PromoteLag is how many entries a learner's log may trail the
	// leader's for a promotion (and at most 10%); default
	// DefaultPromoteLag.
	PromoteLag uint64
	// OnMembership, if set, is told the applied membership when the node
	// starts and after every membership change, from the node's raft
	// goroutine: it must not block (a Member adds and removes transport
	// peers).
	OnMembership func(Membership)
}

// Defaults of Config's retention.
const (
	DefaultRetainEntries  = 4096
	DefaultRetainMaxBytes = 1 << 30
)

// DefaultDedupWindow is Config.DedupWindow's default.
const DefaultDedupWindow = 1 << 16

func (c *Config) setDefaults() {
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = 1
	}
	if c.LogSegmentSize <= 0 {
		c.LogSegmentSize = DefaultLogSegmentSize
	}
	if c.LogCacheBytes <= 0 {
		c.LogCacheBytes = DefaultCacheBytes
	}
	if c.CompactInterval == 0 {
		c.CompactInterval = 10 * time.Second
	}
	if c.RetainEntries == 0 {
		c.RetainEntries = DefaultRetainEntries
	}
	if c.RetainMaxBytes <= 0 {
		c.RetainMaxBytes = DefaultRetainMaxBytes
	}
	if c.RetainTTL <= 0 {
		c.RetainTTL = 10 * time.Minute
	}
	if c.SnapshotGrace <= 0 {
		c.SnapshotGrace = time.Minute
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	election := c.TickInterval * time.Duration(c.ElectionTicks)
	if c.ProposalRetry <= 0 {
		c.ProposalRetry = 2 * election
	}
	if c.ReadRetry <= 0 {
		c.ReadRetry = election
	}
	if c.PromoteLag == 0 {
		c.PromoteLag = DefaultPromoteLag
	}
}

func (c *Config) validate() error {
	switch {
	case c.ID == 0 || c.ClusterID == 0:
		return errors.New("kvtool/cluster: the node ID and the cluster ID must be nonzero")
	case c.Store == nil || c.Transport == nil:
		return errors.New("kvtool/cluster: a node needs a store (opened as a replica) and a transport")
	case c.ElectionTicks <= c.HeartbeatTicks:
		return fmt.Errorf("kvtool/cluster: election timeout (%d ticks) must exceed the heartbeat (%d ticks)", c.ElectionTicks, c.HeartbeatTicks)
	}
	return nil
}

// Node is one running member of a cluster: raft over the node's raft log,
// applying committed entries to its store. All its methods are safe for
// concurrent use.
type Node struct {
	cfg  Config
	st   *store.Store
	ls   *logStore
	raft *raftNode // raft.RawNode, stepped by the Ready loop only (rawnode.go)
	tr   Transport

	waiters  waitTable      // proposals waiting for their entry to apply
	batcher  proposeBatcher // batchable proposals of this node (batch.go)
	batchIDs batchIndex     // the batch records (batchdedup.go); Ready loop only
	reads    readTable      // ReadIndex attempts waiting for their read state

	// Owned by the Ready loop.
	applied   uint64           // last entry handed to the store
	confIndex uint64           // entry the saved membership reflects
	leading   bool             // raft's role in the last Ready was leader
	ticks     <-chan time.Time // raft's clock

	leaderMu sync.Mutex
	leader   uint64
	term     uint64
	leaderCh chan struct{} // closed and replaced when the leader changes

	memMu sync.Mutex
	mem   Membership    // the applied membership
	memCh chan struct{} // closed and replaced when it changes

	stats        nodeStats
	fw           farewellTable          // farewells to removed members (farewell.go)
	lastFarewell atomic.Pointer[string] // what the last farewell did
	rtt          rttTable               // heartbeat round trips to each peer (leader only)
	ret          *retention             // the log each peer pins (leader only)
	snaps        *snapshots             // snapshot transfers, sent and received (snapshot.go)
	bg           sync.WaitGroup

	stop     chan struct{}
	stopped  chan struct{} // closed when the Ready loop returns
	failOnce sync.Once
	failErr  atomic.Pointer[error]
	closing  sync.Once
	closeErr error
}

// Start opens the node's raft state and log in cfg.Dir/raft (bootstrapping
// them from cfg.Peers the first time), and starts raft and its Ready loop.
// The store's applied index tells raft where applying resumes. Serving
// code calls StartMember, which builds the TCP transport and calls Start.
// Every node of a cluster must use the same DedupWindow; node IDs and the
// cluster ID are nonzero (MemberID, ClusterIDOf derive them from names).
func Start(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.Dir, RaftDir)
	if err := checkRemoved(cfg.FS, dir); err != nil {
		return nil, err
	}
	st, err := openState(&cfg, dir)
	if err != nil {
		return nil, err
	}
	ls, err := openLogStore(cfg.FS, dir, cfg.LogSegmentSize, cfg.LogCacheBytes)
	if err != nil {
		return nil, err
	}
	applied := cfg.Store.Snapshot().Index()
	if err := ls.raiseCommit(applied); err != nil {
		ls.close()
		return nil, err
	}
	n := &Node{
		cfg: cfg, st: cfg.Store, ls: ls, tr: cfg.Transport, applied: applied, confIndex: st.ConfIndex,
		waiters: waitTable{m: map[string][]chan applyResult{}}, reads: readTable{m: map[string]chan uint64{}},
		rtt:      rttTable{m: map[uint64]*rttEntry{}, stale: cfg.TickInterval * time.Duration(cfg.ElectionTicks)},
		leaderCh: make(chan struct{}), stop: make(chan struct{}), stopped: make(chan struct{}),
		memCh: make(chan struct{}),
	}
	n.ret = newRetention(&n.cfg)
	n.snaps = newSnapshots(n)
	if err := n.resumeInstall(); err != nil {
		ls.close()
		return nil, err
	}
	n.applied = cfg.Store.Snapshot().Index()
	if err := n.batchIDs.load(cfg.Store.Snapshot()); err != nil {
		ls.close()
		return nil, err
	}
	rs := ls.state() // after a resumed install: the snapshot's membership
	n.setMembership(loadMembership(cfg.Store, rs.Conf, rs.ConfIndex))
	if n.raft, err = newRaftNode(n.raftConfig(n.applied), n.stopped); err != nil {
		ls.close()
		return nil, err
	}
	n.tr.Handle(n)
	n.snaps.start()
	go n.run()
	if n.cfg.CompactInterval > 0 {
		n.bg.Add(1)
		go n.compactLoop()
	}
	go n.autoPromote()
	return n, nil
}

// raftConfig is raft's configuration: CheckQuorum (a leader that cannot
// reach a quorum steps down) and PreVote (a member coming back from a
// partition does not disrupt the cluster) are on.
func (n *Node) raftConfig(applied uint64) *raft.Config {
	return &raft.Config{
		ID: n.cfg.ID, ElectionTick: n.cfg.ElectionTicks, HeartbeatTick: n.cfg.HeartbeatTicks,
		Storage: n.ls, Applied: applied,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256, MaxUncommittedEntriesSize: 64 << 20,
		CheckQuorum: true, PreVote: true, ReadOnlyOption: raft.ReadOnlySafe,
		Logger: quietLogger{},
	}
}

// openState loads the raft state of dir, or bootstraps it from cfg.Peers
// when the directory has none, and checks it belongs to this node.
func openState(cfg *Config, dir string) (*raftState, error) {
	if err := ensureDir(cfg.FS, dir); err != nil {
		return nil, err
	}
	st, err := loadState(cfg.FS, dir)
	if errors.Is(err, errNoState) && cfg.Join != nil {
		return bootstrapJoiner(cfg, dir)
	} else if errors.Is(err, errNoState) {
		return bootstrap(cfg, dir)
	} else if err != nil {
		return nil, err
	}
	if st.ClusterID != cfg.ClusterID || st.NodeID != cfg.ID {
		return nil, fmt.Errorf("%w: %s is node %x of cluster %x, not node %x of cluster %x",
			ErrClusterMismatch, filepath.Join(dir, StateName), st.NodeID, st.ClusterID, cfg.ID, cfg.ClusterID)
	}
	return st, nil
}

// bootstrap writes the first raft state of a founding member: no entries,
// the founding voters as the membership (raft's recommended bootstrap, so
// every founder starts from the same state and no entry carries it).
func bootstrap(cfg *Config, dir string) (*raftState, error) {
	if !slices.Contains(cfg.Peers, cfg.ID) {
		return nil, fmt.Errorf("kvtool/cluster: %s has no raft state, and the founding members %v do not include this node (%x)", dir, cfg.Peers, cfg.ID)
	}
	if idx := cfg.Store.Snapshot().Index(); idx > 0 {
		if err := stateLost(cfg.FS, dir, idx); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("kvtool/cluster: %s has no raft state but the store already holds entries up to %d: refusing to found a cluster on it (start from an empty data directory)", dir, idx)
	}
	if names, _ := cfg.FS.List(dir); slices.ContainsFunc(names, func(n string) bool { _, ok := format.ParseSegmentName(n); return ok }) {
		return nil, fmt.Errorf("%w: %s has raft log segments but no %s: refusing to guess the raft state", ErrDamaged, dir, StateName)
	}
	voters := slices.Clone(cfg.Peers)
	slices.Sort(voters)
	voters = slices.Compact(voters)
	st := &raftState{ClusterID: cfg.ClusterID, NodeID: cfg.ID, Conf: &pb.ConfState{Voters: voters}, SnapConf: &pb.ConfState{Voters: voters}}
	if err := saveState(cfg.FS, dir, st); err != nil {
		return nil, err
	}
	return st, nil
}

// stateLost returns an error wrapping ErrDamaged when the raft directory
// dir, which has no STATE, holds files beside a store with entries up to
// idx: a member's raft state was lost (its start wrote STATE before the
// store applied anything). A raft directory empty but for JOIN beside such
// a store is a single store that a cluster start (or join) was pointed at:
// nil, a usage error.
func stateLost(fs vfs.FS, dir string, idx uint64) error {
	names, err := fs.List(dir)
	names = slices.DeleteFunc(names, func(n string) bool { return n == JoinName })
	if err != nil || len(names) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s has no raft state, but holds %s beside a store with entries up to %d: the member's raft state is lost", ErrDamaged, dir, strings.Join(names, ", "), idx)
}

// ensureDir creates dir and makes its entry durable (format's one helper:
// also when a killed process left it created but not synced).
func ensureDir(fs vfs.FS, dir string) error {
	if err := format.MkdirAllDurable(fs, dir); err != nil {
		return fmt.Errorf("kvtool/cluster: create %s: %w", dir, err)
	}
	return nil
}

// Receive implements Handler: it queues a message from a peer for the
// Ready loop, which steps it into raft, and returns at once (also for a
// proposal a peer forwarded while this node knows no leader: raft drops
// it, and its proposer proposes again, Config.ProposalRetry).
func (n *Node) Receive(ctx context.Context, m *pb.Message) error {
	err := n.receive(ctx, m)
	if err != nil { // the transport drops it: count it, so status shows a misbehaving peer
		n.stats.refused.Add(1)
		e := err.Error()
		n.stats.refusedErr.Store(&e)
	}
	return err
}

func (n *Node) receive(ctx context.Context, m *pb.Message) error {
	if m.GetTo() != n.cfg.ID {
		return fmt.Errorf("kvtool/cluster: node %x got a message for %x", n.cfg.ID, m.GetTo())
	}
	n.stats.received.Add(1)
	if m.GetType() == pb.MsgProp {
		if err := checkProposedConf(m); err != nil {
			return err
		}
	}
	if m.GetType() == pb.MsgHeartbeatResp {
		n.rtt.answered(m.GetFrom(), time.Now())
	}
	if m.GetType() == pb.MsgSnap {
		// raft restores a snapshot's membership without a check: one it
		// cannot hold (a voter that is also a learner) panicked it and
		// failed this member. A leader never sends one; refuse it.
		cs := m.GetSnapshot().GetMetadata().GetConfState()
		if err := restorableConf(cs); err != nil {
			reason, _, _ := strings.Cut(err.Error(), "\n") // raft's reason, without its dump of both states
			return fmt.Errorf("kvtool/cluster: member %x sent a snapshot at index %d with a membership raft cannot hold "+
				"(voters %v, learners %v, outgoing voters %v, next learners %v: %s); dropped",
				m.GetFrom(), m.GetSnapshot().GetMetadata().GetIndex(), cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing(), cs.GetLearnersNext(), strings.TrimSuffix(reason, ":"))
		}
	}
	if m.GetType() == pb.MsgSnap && !n.snaps.admit(ctx, m) {
		return nil // its bytes are not staged here (a lost or stale transfer): raft asks again
	}
	if n.farewellAnswer(m) {
		return nil
	}
	n.raft.step(m)
	return nil
}

// Unreachable implements Handler.
func (n *Node) Unreachable(id uint64) { n.raft.ReportUnreachable(id) }

// raftDir is the node's raft directory.
func (n *Node) raftDir() string { return filepath.Join(n.cfg.Dir, RaftDir) }

// ID is the node's raft ID.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Store is the node's store: local reads take its Snapshot.
func (n *Node) Store() *store.Store { return n.st }

// Leader returns the leader this node knows of (0 if none) and the term.
func (n *Node) Leader() (leader, term uint64) {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leader, n.term
}

// leaderChanged returns a channel closed at the next change of leader.
func (n *Node) leaderChanged() <-chan struct{} {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leaderCh
}

// observeLeader records a new soft state from raft.
func (n *Node) observeLeader(ss *raft.SoftState, term uint64) {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	if ss.Lead != n.leader {
		n.stats.leaderChanges.Add(1)
		n.leader = ss.Lead
		close(n.leaderCh)
		n.leaderCh = make(chan struct{})
	}
	if term > 0 {
		n.term = term
	}
}

// observeTerm records a new term without a change of leader.
func (n *Node) observeTerm(term uint64) {
	n.leaderMu.Lock()
	n.term = term
	n.leaderMu.Unlock()
}

// TransferLeadership asks the leader to hand leadership to member to. It
// returns at once; watch Leader for the outcome (or use TransferLeader).
func (n *Node) TransferLeadership(ctx context.Context, to uint64) {
	n.raft.TransferLeader(to)
}

// TransferLeader makes voter to the leader and returns once this node
// knows it leads. It works on any member (a follower forwards the request
// to the leader). The leader hands over once to has caught up with its
// log; an attempt that has not succeeded after twice the election timeout
// (to was behind, or a message was lost) is made again, until ctx ends:
// then the error wraps ErrNoQuorum. A member that is not a voter is an
// error wrapping ErrUnknownMember.
func (n *Node) TransferLeader(ctx context.Context, to uint64) error {
	if !slices.Contains(n.ls.state().Conf.GetVoters(), to) {
		return fmt.Errorf("%w: %x is not a voter of cluster %x (voters %x)", ErrUnknownMember, to, n.cfg.ClusterID, n.ls.state().Conf.GetVoters())
	}
	retry := 2 * n.cfg.TickInterval * time.Duration(n.cfg.ElectionTicks)
	for {
		changed := n.leaderChanged()
		lead, _ := n.Leader()
		if lead == to {
			return nil
		}
		if lead != 0 {
			n.raft.TransferLeader(to)
		}
		t := time.NewTimer(retry)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return n.deadlineErr(ctx, fmt.Sprintf("transfer of leadership to %x", to))
		case <-n.done():
			t.Stop()
			return n.stoppedErr()
		}
		t.Stop()
	}
}

// Campaign makes this node start an election now (tests, and an operator
// who knows the leader is gone).
func (n *Node) Campaign(ctx context.Context) error { return n.raft.Campaign(ctx) }

// Err returns nil while the node runs, the failure that stopped it
// (wrapping ErrFailed), or ErrStopped after Close.
func (n *Node) Err() error {
	if p := n.failErr.Load(); p != nil {
		return *p
	}
	return nil
}

// fail stops the node after an error it cannot continue from (fail stop).
func (n *Node) fail(err error) {
	n.failOnce.Do(func() {
		e := fmt.Errorf("%w: %w", ErrFailed, err)
		if errors.Is(err, ErrRemoved) {
			e = err // not a failure: the member was removed on purpose
		}
		n.failErr.Store(&e)
	})
}

// done is closed once the node no longer applies anything.
func (n *Node) done() <-chan struct{} { return n.stopped }

// Done is closed once the node has stopped: after Close, or when it failed
// (Err says why). A process serving the node should then shut down: a
// failed node acknowledges nothing more (fail stop), and restarting it
// recovers from what is durable.
func (n *Node) Done() <-chan struct{} { return n.stopped }

// Close stops raft, the Ready loop and the transport, and closes the raft
// log; waiting calls return ErrStopped. The store stays open (its owner
// closes it). Calling Close again returns the same result.
func (n *Node) Close() error {
	n.closing.Do(func() {
		close(n.stop)
		<-n.stopped
		n.snaps.stop()
		n.bg.Wait()
		err := n.tr.Close()
		if lerr := n.ls.close(); err == nil {
			err = lerr
		}
		n.closeErr = err
	})
	return n.closeErr
}

// quietLogger keeps raft from printing: a library never prints. raft's
// Panic and Fatal (broken invariants) still panic.
type quietLogger struct{}

func (quietLogger) Debug(...any)            {}
func (quietLogger) Debugf(string, ...any)   {}
func (quietLogger) Error(...any)            {}
func (quietLogger) Errorf(string, ...any)   {}
func (quietLogger) Info(...any)             {}
func (quietLogger) Infof(string, ...any)    {}
func (quietLogger) Warning(...any)          {}
func (quietLogger) Warningf(string, ...any) {}
func (quietLogger) Fatal(v ...any)          { panic(fmt.Sprint(v...)) }
func (quietLogger) Fatalf(f string, v ...any) {
	panic(fmt.Sprintf(f, v...))
}
func (quietLogger) Panic(v ...any)            { panic(raftPanic(fmt.Sprint(v...))) }
func (quietLogger) Panicf(f string, v ...any) { panic(raftPanic(fmt.Sprintf(f, v...))) }

// checkProposedConf refuses a proposal forwarded by a peer that carries a
// membership change raft cannot decode: raft's leader decodes it as it
// takes the proposal and panics on an error ("panic(err)", not its
// logger), which would take the whole process down on a peer's bytes.
func checkProposedConf(m *pb.Message) error {
	for _, e := range m.GetEntries() {
		var err error
		switch e.GetType() {
		case pb.EntryConfChange:
			err = proto.Unmarshal(e.GetData(), &pb.ConfChange{})
		case pb.EntryConfChangeV2:
			err = proto.Unmarshal(e.GetData(), &pb.ConfChangeV2{})
		}
		if err != nil {
			return fmt.Errorf("kvtool/cluster: member %x proposed a membership change that does not decode (dropped): %w", m.GetFrom(), err)
		}
	}
	return nil
}

// raftPanic is what raft panics with when it finds its state impossible
// (its logger's Panic): a commit index past the durable log ("tocommit(N)
// is out of range"), a vote or term that went back. Since raft runs on the
// node's own goroutine (rawnode.go), the Ready loop recovers it and the
// node fails stop with an error that says which member and what to do,
// instead of the whole process dying with a goroutine dump.
type raftPanic string

// raftPanicErr is the node's error for a recovered raftPanic.
func (n *Node) raftPanicErr(p raftPanic) error {
	return fmt.Errorf("%w: member %x: raft found its durable state inconsistent with the cluster's: %s; "+
		"its raft log or state in %s lost writes it had acknowledged (a disk or file system that does not keep "+
		"fsynced data, or an old copy of the directory put back): run kvtool verify on it, and if it is stale, "+
		"remove the member (kvtool cluster remove) and join it again from an empty directory",
		ErrInconsistent, n.cfg.ID, string(p), filepath.Join(n.cfg.Dir, "raft"))
}

// nodeStats are the node's counters (for status and metrics).
type nodeStats struct {
	proposals, proposalRetries, readIndexes, readRetries atomic.Int64
	leaderChanges, snapshotsNeeded, received             atomic.Int64
	compactions                                          atomic.Int64
	compactErr                                           atomic.Pointer[string]
	confProposals, autoPromotions                        atomic.Int64
	// refused counts the peers' messages Receive refused; refusedErr is
	// the last refusal, which names the sender.
	refused    atomic.Int64
	refusedErr atomic.Pointer[string]
	// Outcomes of Propose: applied (ok), applied as a failed check
	// (aborted: committed, changed nothing), or not answered (failed: no
	// quorum before the deadline, or the node stopped).
	proposalsOK, proposalsAborted, proposalsFailed atomic.Int64
}
