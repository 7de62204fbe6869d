package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/vfs"
	"github.com/kvtool/kvtool/xferstore"
)

// Raft snapshots travel outside raft. raft's MsgSnap carries only
// metadata; the leader intercepts it (ready.go send) and, off the Ready
// goroutine, streams a point-in-time checkpoint of its store and the log
// tail after it with transfer/ over a snapshot stream to the member (a
// second stream kind on the peer listener, fenced by the raft term). The
// checkpoint and tail end at an index T fixed when the snapshot is pinned
// (fixedSource), whose term and membership the leader knows; once the
// member holds all of it durably (cut over into DATA/raft/incoming), the
// leader sends it a MsgSnap with that metadata through raft's own stream
// and reports the snapshot finished (always: Finish or Failure). The member
// steps the MsgSnap into raft only if it holds the staged store at T; raft
// then hands it back in a Ready, and the Ready loop installs it:
//
//  1. STATE records snapshot T (its term and membership) and the raft log
//     is discarded to start after T: the commit point (logStore.installSnapshot);
//  2. the store takes the staged state (store.InstallFrom: it adopts the
//     staged checkpoint and logs the tail into its WAL, unchanged);
//  3. DATA/raft/incoming goes.
//
// The checkpoint is decoded once: the cutover's verification hands its
// blocks to the member (transfer.ReceiveOptions.CheckpointBlocks), which
// keeps them until step 2 opens the staged store on them (store.Options.Base).
//
// A crash after 1 resumes 2 and 3 at Start from the staged store, which is
// durable (its checkpoint then decoded from the file). A transfer cut
// mid-way keeps its verified chunks in DATA/raft/incoming/.transfer, and
// the next stream resumes them if the sender still has that snapshot
// (transfer/ restarts cleanly otherwise).

// IncomingDir is where a member receives a snapshot, inside its raft
// directory: a data directory transfer/ fills and cuts over.
const IncomingDir = "incoming"

// Streams is implemented by a Transport that also carries snapshot
// streams (TCPTransport, MemNetwork endpoints): an authenticated byte
// stream from this member to another, fenced by the raft term.
type Streams interface {
	// OpenStream connects to member to for a snapshot sent in raft term
	// term. The peer refuses a term older than it knows (the error says so).
	OpenStream(ctx context.Context, to, term uint64) (net.Conn, error)
	// HandleStreams sets who takes the streams peers open.
	HandleStreams(h StreamHandler)
}

// StreamHandler takes the snapshot streams peers open.
type StreamHandler interface {
	// AcceptStream decides whether member from may start a stream of term
	// term; an error refuses it (and is told to the dialer).
	AcceptStream(from, term uint64) error
	// ServeStream serves an accepted stream until it ends, and closes conn.
	// Every stream AcceptStream took is served, even one that broke since.
	ServeStream(from, term uint64, conn net.Conn)
}

// ErrStaleTerm is wrapped when a snapshot stream from an older term than
// the receiver knows is refused: its sender no longer leads.
var ErrStaleTerm = errors.New("kvtool/cluster: snapshot stream from a stale term")

// InstallProgress is what a member receiving a snapshot reports (for
// /v1/status "syncing"): the transfer's own progress, and the phase of
// the install around it.
type InstallProgress struct {
	// Phase: "" (none yet), "receiving", "received" (staged, waiting for
	// raft), "installing", "installed", "superseded" (a staged snapshot
	// this node's state had already reached, by an earlier install or the
	// log, so raft never installs it: its copy is removed), or "failed".
	// After a superseded copy of a snapshot this node had installed, the
	// phase is that install's again.
	Phase    string            `json:"phase"`
	From     uint64            `json:"from"`
	Term     uint64            `json:"term"`
	Index    uint64            `json:"index"` // the staged snapshot's index, once received
	Transfer transfer.Progress `json:"transfer"`
	Resumed  int               `json:"resumed"` // sessions that resumed a partial snapshot
	// Restarted counts partial snapshots dropped because another member
	// (a new leader) started sending one.
	Restarted int    `json:"restarted"`
	Err       string `json:"error,omitempty"`
}

// SnapshotStats counts snapshot transfers, both ways.
type SnapshotStats struct {
	Sent        int64  `json:"sent"`         // transfers that ended with the member holding the snapshot
	SendFailed  int64  `json:"send_failed"`  // transfers that failed (raft was told: it retries)
	BytesSent   int64  `json:"bytes_sent"`   // chunk bytes written, resends included
	ResentBytes int64  `json:"resent_bytes"` // of those, sent again after a nack
	Received    int64  `json:"received"`     // transfers this member received completely
	Installed   int64  `json:"installed"`    // snapshots installed here
	Superseded  int64  `json:"superseded"`   // snapshots received complete but not needed (see InstallProgress.Phase)
	DecodedOnce int64  `json:"decoded_once"` // of those, loaded from the blocks the cutover's verification decoded
	Refused     int64  `json:"refused"`      // streams refused (stale term, busy)
	LastError   string `json:"last_error,omitempty"`
}

// snapshots runs a node's snapshot transfers: at most one send per peer
// and one receive at a time, each on its own goroutine, stopped at Close.
type snapshots struct {
	n      *Node
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	secret transfer.Secret
	srcMu  sync.Mutex
	src    *xferstore.StoreSource

	mu                sync.Mutex
	closed            bool // stop was called: no new transfer starts
	sending           map[uint64]bool
	receiving         bool
	staged            uint64            // index of the complete snapshot in IncomingDir (0: none known)
	base              *store.BaseBlocks // its checkpoint as the cutover's verification decoded it (nil: not kept, or taken)
	recvDone          chan struct{}     // closed when the receive running now ends
	progress          InstallProgress
	installedProgress *InstallProgress // progress as the last install ended (nil: none yet)
	lastErr           string
	// stagedHint is staged, for the apply path's lock-free check.
	stagedHint atomic.Uint64

	sent, sendFailed, bytesSent, resent, received, installed, refused, decodedOnce, superseded atomic.Int64
	// rate is the bytes per second a send may use (Config.SnapshotRate;
	// 0: no limit), read by each send as it starts.
	rate atomic.Int64

	confMu   sync.Mutex
	confHist []confAt // memberships by the index they took effect at, oldest first
}

type confAt struct {
	index uint64
	cs    *pb.ConfState
}

func newSnapshots(n *Node) *snapshots {
	ctx, cancel := context.WithCancel(context.Background())
	s := &snapshots{n: n, ctx: ctx, cancel: cancel, sending: map[uint64]bool{}}
	s.rate.Store(n.cfg.SnapshotRate)
	if len(n.cfg.Secret) > 0 {
		s.secret, _ = transfer.NewSecret(n.cfg.Secret)
	}
	st := n.ls.state()
	s.confHist = []confAt{{st.ConfIndex, proto.Clone(st.Conf).(*pb.ConfState)}}
	if st.SnapIndex > st.ConfIndex {
		s.confHist = []confAt{{st.SnapIndex, proto.Clone(st.Conf).(*pb.ConfState)}}
	}
	return s
}

// start lets peers open snapshot streams to the node.
func (s *snapshots) start() {
	if st, ok := s.n.tr.(Streams); ok {
		st.HandleStreams(s)
	}
}

// stop cancels the transfers and waits for them.
func (s *snapshots) stop() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// begin registers a transfer goroutine; false once stopping. s.mu is held.
func (s *snapshots) beginLocked() bool {
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// noteConf records the membership in force from entry index on (the Ready
// loop, as it applies a change or installs a snapshot).
func (s *snapshots) noteConf(index uint64, cs *pb.ConfState) {
	s.confMu.Lock()
	defer s.confMu.Unlock()
	s.confHist = append(s.confHist, confAt{index, proto.Clone(cs).(*pb.ConfState)})
	if len(s.confHist) > 64 {
		s.confHist = append([]confAt(nil), s.confHist[len(s.confHist)-64:]...)
	}
}

// resetConf forgets the memberships before a snapshot at index.
func (s *snapshots) resetConf(index uint64, cs *pb.ConfState) {
	s.confMu.Lock()
	defer s.confMu.Unlock()
	s.confHist = []confAt{{index, proto.Clone(cs).(*pb.ConfState)}}
}

// confAt returns the membership in force after entry index.
func (s *snapshots) confAt(index uint64) (*pb.ConfState, bool) {
	s.confMu.Lock()
	defer s.confMu.Unlock()
	for i := len(s.confHist) - 1; i >= 0; i-- {
		if s.confHist[i].index <= index {
			return proto.Clone(s.confHist[i].cs).(*pb.ConfState), true
		}
	}
	return nil, false
}

// source is the node's transfer source over its store (made once).
func (s *snapshots) source() *xferstore.StoreSource {
	s.srcMu.Lock()
	defer s.srcMu.Unlock()
	if s.src == nil {
		s.src = xferstore.NewStoreSource(s.n.st, xferstore.StoreSourceOptions{FS: s.n.cfg.FS})
	}
	return s.src
}

// send takes over raft's MsgSnap m: the transfer runs on a goroutine of
// its own, and raft is always told how it ended. A second MsgSnap for a
// peer whose transfer is still running is reported failed at once (raft
// asks again later; the running one reports for itself).
func (s *snapshots) send(m *pb.Message) {
	to := m.GetTo()
	if _, ok := s.n.tr.(Streams); !ok || s.secret.IsZero() {
		s.n.stats.snapshotsNeeded.Add(1)
		s.n.raft.ReportSnapshot(to, raft.SnapshotFailure)
		return
	}
	s.mu.Lock()
	busy := s.sending[to]
	ok := !busy && s.beginLocked()
	if ok {
		s.sending[to] = true
	}
	s.mu.Unlock()
	if !ok {
		s.n.raft.ReportSnapshot(to, raft.SnapshotFailure)
		return
	}
	go s.sendTo(to, m.GetTerm())
}

func (s *snapshots) sendTo(to, term uint64) {
	defer s.wg.Done()
	err := s.transferTo(to, term)
	s.mu.Lock()
	delete(s.sending, to)
	if err != nil {
		s.lastErr = fmt.Sprintf("snapshot to member %x: %v", to, err)
	}
	s.mu.Unlock()
	status := raft.SnapshotFinish
	if err != nil {
		s.sendFailed.Add(1)
		status = raft.SnapshotFailure
		s.pause() // raft asks again at once: pace the retries
	}
	s.n.raft.ReportSnapshot(to, status)
}

// pause waits half an election timeout (or until the node stops) before
// a failed transfer is reported: raft keeps the member in snapshot state
// meanwhile, so a member that cannot take a snapshot now is not asked
// again in a tight loop.
func (s *snapshots) pause() {
	t := time.NewTimer(s.n.cfg.TickInterval * time.Duration(s.n.cfg.ElectionTicks) / 2)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
	}
}

// transferTo streams a snapshot to member to and, once it holds all of
// it, sends it the MsgSnap that makes raft install it. The log after the
// snapshot stays held (retention) while the transfer runs and for the
// grace period after.
func (s *snapshots) transferTo(to, term uint64) error {
	s.n.ret.hold(to, s.n.st.Snapshot().Index())
	defer s.n.ret.release(to, time.Now())
	ctx := s.ctx
	conn, err := s.n.tr.(Streams).OpenStream(ctx, to, term)
	if err != nil {
		return err
	}
	defer conn.Close()
	src := &fixedSource{Source: s.source(), st: s.n.st}
	res, err := transfer.Send(ctx, conn, src, transfer.SendOptions{
		Secret: s.secret, Peer: fmt.Sprintf("member %x", to), ChunkSize: s.n.cfg.SnapshotChunk, MaxRate: s.rate.Load(),
		RetainEvery: time.Second,
	})
	s.bytesSent.Add(res.ChunkBytes)
	s.resent.Add(res.ResentBytes)
	if h := sendHook.Load(); h != nil {
		(*h)(s.n.cfg.ID, to, res, err)
	}
	if err != nil {
		return err
	}
	msg, err := s.snapMessage(to, term, res.TailEnd)
	if err != nil {
		return err
	}
	s.n.ret.hold(to, res.TailEnd)
	s.n.tr.Send([]*pb.Message{msg})
	s.sent.Add(1)
	s.awaitMatch(to, res.TailEnd)
	return nil
}

// awaitMatch waits (up to two election timeouts) for member to to answer
// the MsgSnap at index: raft then moves it from snapshot to replicating by
// itself. Reporting the snapshot finished before that would make raft
// probe the member from the snapshot raft meant to send, which compaction
// may have passed since, and ask for another snapshot (a loop).
func (s *snapshots) awaitMatch(to, index uint64) {
	deadline := time.Now().Add(2 * s.n.cfg.TickInterval * time.Duration(s.n.cfg.ElectionTicks))
	t := time.NewTicker(s.n.cfg.TickInterval)
	defer t.Stop()
	for time.Now().Before(deadline) {
		if pr, ok := s.n.raft.Status().Progress[to]; !ok || pr.Match >= index {
			return
		}
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
	}
}

// snapMessage is the MsgSnap for a snapshot at index: its term from the
// raft log, the membership then.
func (s *snapshots) snapMessage(to, term, index uint64) (*pb.Message, error) {
	t, err := s.n.ls.Term(index)
	if err != nil {
		return nil, fmt.Errorf("kvtool/cluster: the term of snapshot index %d: %w", index, err)
	}
	cs, ok := s.confAt(index)
	if !ok {
		return nil, fmt.Errorf("kvtool/cluster: the membership at snapshot index %d is no longer known (a change applied since)", index)
	}
	return &pb.Message{
		Type: pb.MsgSnap.Enum(), To: new(to), From: new(s.n.cfg.ID), Term: new(term),
		Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(index), Term: new(t), ConfState: cs}},
	}, nil
}

// sendHook, if set (by tests), is told how each snapshot session a node
// sent ended: the sender, the member, transfer/'s result and error.
var sendHook atomic.Pointer[func(from, to uint64, res transfer.SendResult, err error)]

// fixedSource is the store's transfer source with the tail fixed at the
// index the pin was taken at (or the checkpoint's, if later): the
// snapshot a member installs ends exactly there, an index whose raft term
// and membership the leader knows.
type fixedSource struct {
	transfer.Source
	st  *store.Store
	mu  sync.Mutex
	end uint64
}

func (f *fixedSource) Pin(ctx context.Context, req transfer.PinRequest) (transfer.Snapshot, error) {
	snap, err := f.Source.Pin(ctx, req)
	if err == nil {
		f.mu.Lock()
		f.end = max(snap.ID().Index, f.st.Snapshot().Index())
		f.mu.Unlock()
	}
	return snap, err
}

// LastIndex is the pinned end once Pin ran, the live log's before (the
// sender checks a resuming receiver's claims against it).
func (f *fixedSource) LastIndex() uint64 {
	f.mu.Lock()
	end := f.end
	f.mu.Unlock()
	if end == 0 {
		return f.Source.LastIndex()
	}
	return end
}

func (f *fixedSource) Tail(ctx context.Context, from uint64) (transfer.Tail, error) {
	t, err := f.Source.Tail(ctx, from)
	if err != nil {
		return nil, err
	}
	return &fixedTail{Tail: t, end: f.LastIndex()}, nil
}

// fixedTail ends (blocks until ctx ends) after index end.
type fixedTail struct {
	transfer.Tail
	end uint64
}

func (t *fixedTail) Next(ctx context.Context) (segment.Entry, error) {
	e, err := t.Tail.Next(ctx)
	if err == nil && e.Index > t.end {
		<-ctx.Done()
		return segment.Entry{}, ctx.Err()
	}
	return e, err
}

// AcceptStream implements StreamHandler: a stream of an older term than
// this node knows is refused, and so is a second one while one runs, and
// any once the node failed (a receive would clear IncomingDir, which may
// hold the staged copy an install the failure interrupted resumes from at
// the next start).
func (s *snapshots) AcceptStream(from, term uint64) error {
	if err := s.n.Err(); err != nil {
		s.refused.Add(1)
		return fmt.Errorf("kvtool/cluster: member %x has stopped (%v); it takes no snapshot until it restarts", s.n.cfg.ID, err)
	}
	_, known := s.n.Leader()
	if hs := s.n.ls.state(); hs.Term > known {
		known = hs.Term
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case term < known:
		s.refused.Add(1)
		return fmt.Errorf("%w: member %x sends a snapshot of term %d, member %x knows term %d", ErrStaleTerm, from, term, s.n.cfg.ID, known)
	case s.receiving:
		s.refused.Add(1)
		return fmt.Errorf("kvtool/cluster: member %x is already receiving a snapshot; try again later", s.n.cfg.ID)
	case !s.beginLocked():
		return fmt.Errorf("kvtool/cluster: member %x is stopping", s.n.cfg.ID)
	}
	s.receiving, s.recvDone = true, make(chan struct{})
	s.progress = InstallProgress{Phase: "receiving", From: from, Term: term, Resumed: s.progress.Resumed, Restarted: s.progress.Restarted}
	return nil
}

// ServeStream implements StreamHandler: it receives the snapshot into
// IncomingDir, resuming what an earlier session left there.
func (s *snapshots) ServeStream(from, term uint64, conn net.Conn) {
	defer s.wg.Done() // taken by AcceptStream
	defer conn.Close()
	res, base, err := s.receive(from, conn)
	if s.finishReceive(from, res, base, err) {
		s.dropIfSuperseded(s.n.st.Snapshot().Index())
	}
}

// finishReceive records the end of a receive; it reports whether a
// complete snapshot is now staged.
func (s *snapshots) finishReceive(from uint64, res transfer.ReceiveResult, base *store.BaseBlocks, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.receiving = false
	defer close(s.recvDone)
	if res.Resumed {
		s.progress.Resumed++
	}
	if err != nil {
		s.progress.Phase, s.progress.Err = "failed", err.Error()
		s.lastErr = fmt.Sprintf("snapshot from member %x: %v", from, err)
		return false
	}
	s.received.Add(1)
	s.staged, s.base = res.Applied, nil
	s.stagedHint.Store(res.Applied)
	if res.CutOver {
		s.base = base
	}
	s.progress.Phase, s.progress.Index, s.progress.Err = "received", res.Applied, ""
	return true
}

// dropIfSuperseded removes the staged snapshot once this node's state
// (applied, the store's index) stands at or past it: raft steps over a
// snapshot no newer than its commit index, so the copy would otherwise
// stay in IncomingDir, as large as the store, and the status would say
// "received" until another snapshot came. A leader can send a second
// snapshot while the member installs the first (its answers to the
// leader's probes arrive before the install), and a member can catch up
// by the log while one streams. It runs on the receiving goroutine, once
// the snapshot is staged, and on the Ready goroutine after entries apply;
// the removal holds s.mu, so no receive starts into IncomingDir meanwhile.
func (s *snapshots) dropIfSuperseded(applied uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.receiving || s.staged == 0 || s.staged > applied || s.progress.Phase != "received" {
		return
	}
	s.staged, s.base = 0, nil
	s.stagedHint.Store(0)
	s.superseded.Add(1)
	counts := s.progress
	if s.installedProgress != nil {
		s.progress = *s.installedProgress
	} else {
		s.progress.Phase = "superseded"
	}
	s.progress.Resumed, s.progress.Restarted = counts.Resumed, counts.Restarted
	if err := removeAll(s.n.cfg.FS, s.incoming()); err != nil {
		// Not fatal: the next receive clears what is left (clearComplete).
		s.lastErr = fmt.Sprintf("remove the superseded snapshot's staging directory %s: %v", s.incoming(), err)
	}
}

// receive receives a snapshot from member from into its directory under
// IncomingDir, and returns with it the checkpoint's blocks its
// verification decoded (nil if this session did not verify it).
func (s *snapshots) receive(from uint64, conn net.Conn) (transfer.ReceiveResult, *store.BaseBlocks, error) {
	dir := filepath.Join(s.incoming(), fmt.Sprintf("%016x", from))
	if err := s.dropOthers(filepath.Base(dir)); err != nil {
		return transfer.ReceiveResult{}, nil, err
	}
	if err := s.clearComplete(dir); err != nil {
		return transfer.ReceiveResult{}, nil, err
	}
	var base *store.BaseBlocks
	res, err := transfer.Receive(s.ctx, conn, transfer.ReceiveOptions{
		FS: s.n.cfg.FS, Dir: dir, Secret: s.secret, Peer: fmt.Sprintf("member %x", from), Window: s.n.cfg.SnapshotWindow,
		Progress: func(p transfer.Progress) {
			s.mu.Lock()
			s.progress.Transfer = p
			s.mu.Unlock()
		},
		CheckpointBlocks: func(info checkpoint.Info) func(*format.Block) error {
			base = store.NewBaseBlocks(info)
			return base.Add
		},
	})
	if err != nil {
		base = nil
	}
	return res, base, err
}

// incoming is IncomingDir; each sender's snapshot goes in a directory of
// its own under it, named by the sender's ID (16 hex digits).
func (s *snapshots) incoming() string { return filepath.Join(s.n.cfg.Dir, RaftDir, IncomingDir) }

// dropOthers removes what other senders left in IncomingDir: a new leader
// never has the snapshot an old one was sending (each member's store has
// its own identity), so its transfer starts over rather than being refused
// as another store's (transfer.ErrStoreMismatch).
func (s *snapshots) dropOthers(keep string) error {
	names, err := s.n.cfg.FS.List(s.incoming())
	if err != nil {
		return nil // nothing received yet
	}
	for _, name := range names {
		if name == keep {
			continue
		}
		if err := removeAll(s.n.cfg.FS, filepath.Join(s.incoming(), strings.TrimSuffix(name, ".old"))); err != nil {
			return fmt.Errorf("kvtool/cluster: remove the snapshot another member sent (%s): %w", name, err)
		}
		if !strings.HasSuffix(name, ".old") {
			s.mu.Lock()
			s.progress.Restarted++
			s.mu.Unlock()
		}
	}
	return nil
}

// clearComplete removes a complete store left in dir by an earlier
// transfer that raft never asked to install (a new transfer starts over;
// a partial one is resumed instead).
func (s *snapshots) clearComplete(dir string) error {
	if _, err := s.n.cfg.FS.Stat(filepath.Join(dir, format.ManifestName)); err != nil {
		return nil
	}
	s.mu.Lock()
	s.staged, s.base = 0, nil
	s.stagedHint.Store(0)
	s.mu.Unlock()
	return removeAll(s.n.cfg.FS, dir)
}

// admit reports whether a MsgSnap may be stepped into raft: this node
// holds its snapshot, staged. The sender sends it as soon as this side
// confirmed the cutover, which may be before the receiving goroutine
// recorded it: a receive still running is waited for (until ctx ends).
func (s *snapshots) admit(ctx context.Context, m *pb.Message) bool {
	ctx, cancel := context.WithTimeout(ctx, s.n.cfg.TickInterval*time.Duration(s.n.cfg.ElectionTicks))
	defer cancel()
	idx := m.GetSnapshot().GetMetadata().GetIndex()
	for {
		s.mu.Lock()
		staged, receiving, done := s.staged, s.receiving, s.recvDone
		s.mu.Unlock()
		if staged != 0 && staged == idx {
			return true
		}
		if !receiving {
			return false
		}
		select {
		case <-done:
		case <-ctx.Done():
			return false
		}
	}
}

// installStore makes the store take the staged snapshot at index (step 2
// of an install), then removes the staging directory (step 3).
func (s *snapshots) installStore(index uint64) error {
	s.setPhase("installing", index)
	if s.n.st.Snapshot().Index() < index {
		if err := s.loadStaged(index); err != nil {
			return err
		}
	}
	if err := removeAll(s.n.cfg.FS, s.incoming()); err != nil {
		return fmt.Errorf("kvtool/cluster: remove the installed snapshot's staging directory: %w", err)
	}
	s.installed.Add(1)
	s.mu.Lock()
	s.staged = 0
	s.stagedHint.Store(0)
	s.progress.Phase, s.progress.Index = "installed", index
	p := s.progress
	s.installedProgress = &p
	s.mu.Unlock()
	return nil
}

// loadStaged reads the staged store (the complete one in IncomingDir) and
// installs its state.
func (s *snapshots) loadStaged(index uint64) error {
	dir, ok := stagedStore(s.n.cfg.FS, s.incoming())
	if !ok {
		dir = s.incoming()
	}
	s.mu.Lock()
	base := s.base
	s.base = nil
	s.mu.Unlock()
	staged, err := store.Open(store.Options{FS: s.n.cfg.FS, Dir: dir, ReadOnly: true, Base: base})
	if err != nil {
		return fmt.Errorf("%w: open the staged snapshot %s for index %d (the raft state says it is installed; restore the node from a peer if it is gone): %w", ErrDamaged, dir, index, err)
	}
	defer staged.Close()
	if base != nil && base.Taken() {
		s.decodedOnce.Add(1)
	}
	snap := staged.Snapshot()
	if snap.Index() != index {
		return fmt.Errorf("%w: the staged snapshot %s stands at index %d, the raft state says %d is installed (restore the node from a peer)", ErrDamaged, dir, snap.Index(), index)
	}
	// The store adopts the staged files (the received checkpoint, and
	// the tail as its WAL) rather than encoding the state again; the
	// staged directory is only read, so a crash before the store holds
	// the whole tail installs from it again at the next start.
	if err := s.n.st.InstallFrom(s.ctx, staged); err != nil {
		return fmt.Errorf("kvtool/cluster: install snapshot %d into the store: %w", index, err)
	}
	return nil
}

func (s *snapshots) setPhase(phase string, index uint64) {
	s.mu.Lock()
	s.progress.Phase, s.progress.Index = phase, index
	s.mu.Unlock()
}

// InstallProgress reports the snapshot this node receives or installs
// (the zero value if none ever came).
func (n *Node) InstallProgress() InstallProgress {
	n.snaps.mu.Lock()
	defer n.snaps.mu.Unlock()
	return n.snaps.progress
}

// SnapshotStats returns the node's snapshot counters.
func (n *Node) SnapshotStats() SnapshotStats {
	s := n.snaps
	s.mu.Lock()
	last := s.lastErr
	s.mu.Unlock()
	return SnapshotStats{
		Sent: s.sent.Load(), SendFailed: s.sendFailed.Load(), BytesSent: s.bytesSent.Load(), ResentBytes: s.resent.Load(),
		Received: s.received.Load(), Installed: s.installed.Load(), Superseded: s.superseded.Load(), DecodedOnce: s.decodedOnce.Load(), Refused: s.refused.Load(), LastError: last,
	}
}

// installSnapshot is the Ready loop's install of raft's snapshot (see the
// steps above): raft state and log first (the commit point), then the
// store.
func (n *Node) installSnapshot(snap *pb.Snapshot) error {
	md := snap.GetMetadata()
	if err := n.ls.installSnapshot(md); err != nil {
		return err
	}
	n.snaps.resetConf(md.GetIndex(), md.GetConfState())
	if err := n.snaps.installStore(md.GetIndex()); err != nil {
		return err
	}
	if err := n.batchIDs.load(n.st.Snapshot()); err != nil {
		return err
	}
	n.applied, n.confIndex = md.GetIndex(), md.GetIndex()
	// The transport learns the peers the snapshot's membership names.
	n.setMembership(loadMembership(n.st, md.GetConfState(), md.GetIndex()))
	return nil
}

// resumeInstall finishes, at Start, an install a crash interrupted: the
// raft state records a snapshot past the store's state, or the store took
// it but its staged copy is still there (CheckInstall).
func (n *Node) resumeInstall() error {
	st := n.ls.state()
	if st.SnapIndex <= n.st.Snapshot().Index() && !errors.Is(CheckInstall(n.cfg.FS, n.cfg.Dir), ErrInstallPending) {
		return nil
	}
	return n.snaps.installStore(st.SnapIndex)
}

// removeAll removes dir and everything under it, durably: dir is first
// renamed away (dir + ".old", one atomic step), so a crash never leaves
// half of it under its name; a leftover ".old" is removed first.
func removeAll(fs vfs.FS, dir string) error {
	old := dir + ".old"
	if err := removeTree(fs, old); err != nil {
		return err
	}
	if _, err := fs.Stat(dir); vfs.IsNotExist(err) {
		return nil
	}
	if err := fs.Rename(dir, old); err != nil {
		return err
	}
	if err := fs.SyncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	return removeTree(fs, old)
}

// removeTree removes dir and everything under it.
func removeTree(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if vfs.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	for _, name := range names {
		p := filepath.Join(dir, name)
		if fi, err := fs.Stat(p); err == nil && fi.IsDir() {
			if err := removeTree(fs, p); err != nil {
				return err
			}
			continue
		}
		if err := fs.Remove(p); err != nil && !vfs.IsNotExist(err) {
			return err
		}
	}
	if err := fs.Remove(dir); err != nil && !vfs.IsNotExist(err) {
		return err
	}
	return fs.SyncDir(filepath.Dir(dir))
}
