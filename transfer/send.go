package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
)

// SendOptions configure Send and WriteStream.
type SendOptions struct {
	Secret Secret
	Peer   string // names the receiver in errors, leases and progress
	// ChunkSize is the chunk size of a new snapshot (a resumed one keeps
	// its own); default DefaultChunkSize.
	ChunkSize int
	// MaxRate limits the bytes per second written (chunks and tail); 0
	// means no limit.
	MaxRate int64
	// Compress zstd-compresses each chunk. Checkpoint blocks are already
	// compressed, so this pays only for uncompressed checkpoints.
	Compress bool
	// RetainEvery is how often the pin is renewed and moved up to what the
	// receiver holds; default 5s.
	RetainEvery time.Duration
	// Progress, if set, is called as the transfer advances.
	Progress func(Progress)
	// HandshakeTimeout bounds the handshake: a peer that has not proved
	// the secret by then is dropped. Default 10s.
	HandshakeTimeout time.Duration
	// APIAddr, if set, is the HTTP API address of the source (HOST:PORT;
	// an unspecified host means the host the receiver reached): the
	// sender's hello carries it to a receiver that asks for it, so that a
	// read replica names it when it refuses a write.
	APIAddr string

	// admit, if set (Serve), is called once the peer proved the secret:
	// it takes a session slot (release gives it back) or refuses.
	admit func() (release func(), err error)
	// hmacTags, for tests, makes the sender turn down a receiver's offer
	// of GCM tags, as a sender older than them does.
	hmacTags bool
}

// apiAddr is APIAddr if a hello can carry it, else "".
func (o *SendOptions) apiAddr() string {
	if len(o.APIAddr) > format.MaxXferAPIAddr || strings.IndexFunc(o.APIAddr, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return ""
	}
	return o.APIAddr
}

func (o *SendOptions) fill() {
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = handshakeTimeout
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	o.ChunkSize = min(max(o.ChunkSize, format.MinXferChunk), format.MaxXferChunk)
	if o.RetainEvery <= 0 {
		o.RetainEvery = 5 * time.Second
	}
	if o.Peer == "" {
		o.Peer = "receiver"
	}
}

// SendResult says what a send did.
type SendResult struct {
	Snapshot    format.XferSnapshotID `json:"snapshot"`
	Size        int64                 `json:"snapshot_bytes"`   // snapshot bytes
	Chunks      uint64                `json:"chunks"`           // chunks of the snapshot
	ResumeFrom  uint64                `json:"resume_from"`      // first chunk of this session (0 unless resumed)
	Restarted   bool                  `json:"restarted"`        // the receiver's partial snapshot was gone here: a new one was sent
	TailOnly    bool                  `json:"tail_only"`        // no snapshot: a complete store was caught up
	ChunkBytes  int64                 `json:"chunk_bytes_sent"` // chunk bytes written, resends included
	ResentBytes int64                 `json:"resent_bytes"`     // of those, sent again after a nack
	Entries     int64                 `json:"tail_entries"`     // tail entries written
	TailBytes   int64                 `json:"tail_bytes"`       // their data bytes
	WireBytes   int64                 `json:"wire_bytes"`       // every byte written
	TailEnd     uint64                `json:"tail_end"`         // the last tail entry before the final frame
	Applied     uint64                `json:"applied_index"`    // the index the receiver cut over (or caught up) at
	// The snapshot's bytes as both ends count them (see totals.go): held
	// by the receiver at the end, moved by this session, and its rate in
	// bytes per second.
	BytesDone    int64 `json:"bytes_done"`
	SessionBytes int64 `json:"session_bytes"`
	Rate         int64 `json:"rate"`
}

// maxTailBuffer bounds the tail entries read ahead of the connection.
const maxTailBuffer = 4 << 20

// tailBudget is how many tail bytes go out between two chunks, so neither
// starves the other.
const tailBudget = 256 << 10

// Send ships a snapshot of src and its log tail over conn to a receiver
// (Receive), after both proved the shared secret. If the receiver holds
// part of a snapshot src still has, only the missing chunks go; if it
// holds a complete store, only the log after it. It returns once the
// receiver confirmed its cutover; if the receiver follows (serve --join),
// it keeps streaming the log until conn or ctx ends.
//
// A dropped connection is an error wrapping ErrPeerGone; the receiver keeps
// what it verified, so sending again resumes. If ctx is done, Send returns
// promptly when conn is a net.Conn (it sets a deadline on it); it does not
// close conn, unless conn takes no deadline: then closing it is the only
// way to stop reading it, and Send closes it when cancelled and before it
// returns (an io.ReadWriter that can neither take a deadline nor be closed
// leaves a reader blocked until the stream delivers or ends).
func Send(ctx context.Context, conn io.ReadWriter, src Source, opts SendOptions) (SendResult, error) {
	opts.fill()
	if opts.Secret.IsZero() {
		return SendResult{}, ErrNoSecret
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer watch(ctx, conn)()
	s := newSender(conn, src, opts, true)
	err := s.run(ctx)
	s.res.WireBytes = s.w.written()
	s.finishTotals()
	return s.res, contextErr(ctx, err)
}

// sender is one sending session. The writer side (run, step and what they
// call) is one goroutine; readLoop and tailLoop hand it their results
// under mu and through the tail queue.
type sender struct {
	src    Source
	opts   SendOptions
	peer   string
	conn   any
	r      *frameReader
	w      *frameWriter
	oneWay bool
	snap   Snapshot
	sess   format.XferSession
	follow bool
	bucket *bucket
	res    SendResult
	header bool // the stream header is written

	mu     sync.Mutex
	credit format.XferCredit
	nacks  []uint64
	done   bool
	err    error // first error of the reader
	wake   chan struct{}
	sent   atomic.Uint64 // one past the highest chunk sent

	next        uint64              // next chunk to send for the first time
	fileSum     *format.XferFileSum // of the chunks sent in order, for the final frame
	digestNext  uint64
	tail        *tailQueue
	lastTail    uint64
	target      uint64
	targetSet   bool
	finalSent   bool
	chunkBuf    []byte
	zbuf        []byte
	lastRetain  time.Time
	lastProg    time.Time
	started     time.Time // when the session frame went out
	readerDone  chan struct{}
	tailStopped chan struct{}
}

func newSender(conn any, src Source, opts SendOptions, live bool) *sender {
	s := &sender{src: src, opts: opts, peer: opts.Peer, conn: conn, wake: make(chan struct{}, 1),
		bucket: newBucket(opts.MaxRate), lastRetain: time.Now()}
	if r, ok := conn.(io.Reader); ok && live {
		s.r = newFrameReader(r, opts.Peer, true)
	}
	s.w = newFrameWriter(conn.(io.Writer), opts.Peer, live)
	return s
}

func (s *sender) run(ctx context.Context) error {
	// A peer that connects and says nothing must not hold a session for
	// ever: the handshake has a deadline.
	lift := limit(s.conn, s.opts.HandshakeTimeout)
	req, err := s.handshake()
	lift()
	if err != nil {
		return s.abort(err)
	}
	if s.opts.admit != nil {
		release, err := s.opts.admit()
		if err != nil {
			return s.abort(err)
		}
		defer release()
	}
	if err := s.open(ctx, req); err != nil {
		s.releaseFailedOpen()
		return s.abort(err)
	}
	err = s.writeSession()
	if err == nil {
		s.readerDone = make(chan struct{})
		go s.readLoop()
		// Tell the receiver first: stopping the reader may close conn.
		err = s.abort(s.stream(ctx))
		s.stopReader()
	} else {
		err = s.abort(err)
	}
	s.retainFinal()
	s.snap.Release(!resumable(ctx, err))
	return err
}

// retainFinal moves the pin up to what a receiver that cut over holds, and
// off the snapshot file, before the pin is released or parked.
func (s *sender) retainFinal() {
	s.mu.Lock()
	done, c, applied := s.done, s.credit, s.res.Applied
	s.mu.Unlock()
	if done {
		s.snap.Retain(max(c.WALLast, c.Applied, applied, s.sess.TailFrom-1), false)
	}
}

// resumable reports whether a session that ended with err may be resumed
// by the same receiver: the connection broke, or this side was stopped.
func resumable(ctx context.Context, err error) bool {
	return errors.Is(err, ErrPeerGone) || ctx.Err() != nil
}

// stream runs the writer until the session ends.
func (s *sender) stream(ctx context.Context) error {
	tctx, stopTail := context.WithCancel(ctx)
	s.tail = newTailQueue(maxTailBuffer)
	s.tailStopped = make(chan struct{})
	go s.tailLoop(tctx)
	defer func() {
		stopTail()
		<-s.tailStopped
	}()
	for {
		err := s.step(ctx)
		if errors.Is(err, errFinished) {
			s.progress(PhaseDone, true)
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// handshake reads the receiver's hello, proves the secret, and checks the
// receiver's proof in its request.
func (s *sender) handshake() (format.XferRequest, error) {
	var req format.XferRequest
	if err := s.r.header(format.XferReceiver, format.XferDuplex); err != nil {
		return req, err
	}
	f, err := expect(s.r, format.FrameXferHello, s.peer)
	if err != nil {
		return req, err
	}
	h, err := format.DecodeXferHello(f.Payload, s.peer, f.Offset)
	if err != nil {
		return req, err
	}
	if err := checkVersion(h.Version, helloVersion, s.peer); err != nil {
		return req, err
	}
	if h.Role != format.XferReceiver {
		return req, protocolf(s.peer, "hello from role %d, want a receiver", h.Role)
	}
	ns := newNonce()
	s.writeHeader(format.XferDuplex)
	hello := format.XferHello{Version: helloVersion, Role: format.XferSender, Nonce: ns}
	if h.Features()&format.XferFeatureSenderAPI != 0 {
		hello.API = s.opts.apiAddr()
	}
	scheme := tagHMAC
	if h.Features()&format.XferFeatureGCMTags != 0 && !s.opts.hmacTags {
		scheme, hello.Version = tagGCM, gcmHelloVersion
	}
	hello.Proof = s.opts.Secret.senderProof(h.Nonce, ns, format.XferHelloExt(hello))
	s.w.frame(format.FrameXferHello, func(b []byte) []byte { return format.AppendXferHello(b, hello) })
	// Every frame after the hellos carries a tag (frameAuth).
	toR, toS := s.opts.Secret.frameKeys(h.Nonce, ns, scheme)
	s.w.auth, s.r.auth = newFrameAuth(toR, scheme), newFrameAuth(toS, scheme)
	if err := s.w.flush(); err != nil {
		return req, err
	}
	if f, err = expect(s.r, format.FrameXferRequest, s.peer); err != nil {
		return req, err
	}
	if req, err = format.DecodeXferRequest(f.Payload, s.peer, f.Offset); err != nil {
		return req, err
	}
	if !validProof(req.Proof, s.opts.Secret.receiverProof(ns, h.Nonce)) {
		return req, fmt.Errorf("%w (%s)", ErrAuth, s.peer)
	}
	return req, nil
}

func (s *sender) writeHeader(mode format.XferMode) {
	if !s.header {
		s.header = true
		s.w.header(format.XferSender, mode)
	}
}

// open pins what the receiver needs and builds the session header: the
// log after its store, the rest of its partial snapshot, or a new snapshot.
func (s *sender) open(ctx context.Context, req format.XferRequest) error {
	id := s.src.Identity()
	if req.StoreID != ([16]byte{}) && req.StoreID != id.StoreID {
		return fmt.Errorf("%w: %s holds store %s, this is store %s", ErrStoreMismatch, s.peer, manifest.StoreID(req.StoreID), id.StoreID)
	}
	s.follow = req.Flags&format.XferFollow != 0
	s.sess = format.XferSession{Version: format.XferProtocol, StoreID: id.StoreID, Epoch: id.Epoch, Term: id.Term,
		SegmentSize: uint64(max(id.SegmentSize, 0))}
	// A receiver cannot hold entries this log never had: such a claim
	// would make the session skip or stream past them.
	if last := s.src.LastIndex(); req.WALLast > last {
		return protocolf(s.peer, "says it holds entry %d, but this log ends at %d", req.WALLast, last)
	}
	if req.Flags&format.XferHaveStore != 0 {
		return s.openTailOnly(ctx, req.WALLast)
	}
	return s.openSnapshot(ctx, req)
}

// releaseFailedOpen releases what open pinned before it failed (the
// snapshot's file and lease), keeping the lease for a resume.
func (s *sender) releaseFailedOpen() {
	if s.snap != nil {
		s.snap.Release(false)
		s.snap = nil
	}
}

func (s *sender) openTailOnly(ctx context.Context, after uint64) error {
	snap, err := s.src.PinLog(ctx, s.peer, after)
	if err != nil {
		return err
	}
	s.snap = snap
	s.sess.Flags = format.XferTailOnly
	s.sess.Snapshot = format.XferSnapshotID{Index: after}
	s.sess.TailFrom = after + 1
	s.res.TailOnly = true
	s.lastTail = after
	s.fileSum = format.NewXferFileSum()
	return nil
}

func (s *sender) openSnapshot(ctx context.Context, req format.XferRequest) error {
	partial := req.Flags&format.XferHavePartial != 0
	pin := PinRequest{Peer: s.peer}
	if partial {
		pin.Want, pin.TailFrom = req.Snapshot, max(req.WALLast, req.Snapshot.Index)+1
	}
	snap, err := s.src.Pin(ctx, pin)
	if err != nil {
		return err
	}
	s.snap = snap
	resume := partial && snap.ID() == pin.Want
	chunk := uint32(s.opts.ChunkSize)
	if resume {
		chunk = req.ChunkSize
	}
	s.layout(snap, chunk)
	switch {
	case resume:
		s.sess.ResumeFrom, s.sess.TailFrom = min(req.FirstMissing, s.sess.ChunkCount), pin.TailFrom
	case partial:
		s.sess.Flags |= format.XferRestarted
	}
	s.lastTail = s.sess.TailFrom - 1
	s.next = s.sess.ResumeFrom
	s.res.Snapshot, s.res.Size, s.res.Chunks = s.sess.Snapshot, int64(s.sess.TotalSize), s.sess.ChunkCount
	s.res.ResumeFrom, s.res.Restarted = s.sess.ResumeFrom, !resume && partial
	s.grant(req.Window)
	return s.startDigest()
}

// layout cuts snap into chunks of size chunk.
func (s *sender) layout(snap Snapshot, chunk uint32) {
	size := uint64(snap.Size())
	s.sess.Snapshot, s.sess.ChunkSize, s.sess.TotalSize = snap.ID(), chunk, size
	s.sess.ChunkCount = format.XferChunkCount(size, chunk)
	s.sess.TailFrom = snap.ID().Index + 1
}

// grant sets the initial credit: window bytes past the resume point.
func (s *sender) grant(window uint64) {
	if window == 0 {
		window = DefaultWindow
	}
	w := max(1, window/uint64(s.sess.ChunkSize))
	s.credit = format.XferCredit{FirstMissing: s.sess.ResumeFrom, Limit: s.sess.ResumeFrom + min(w, s.sess.ChunkCount)}
}

// startDigest starts the final frame's checksum; on a resume it first
// reads the chunks the receiver already has, for their checksums.
func (s *sender) startDigest() error {
	s.fileSum = format.NewXferFileSum()
	for seq := uint64(0); seq < s.sess.ResumeFrom; seq++ {
		raw, err := s.readChunk(seq)
		if err != nil {
			return err
		}
		s.fileSum.Add(xxhash.Sum64(raw))
	}
	s.digestNext = s.sess.ResumeFrom
	return nil
}

func (s *sender) writeSession() error {
	s.started = time.Now()
	s.w.frame(format.FrameXferSession, func(b []byte) []byte { return format.AppendXferSession(b, s.sess) })
	if err := s.w.flush(); err != nil {
		return err
	}
	s.progress(PhaseSnapshot, true)
	return nil
}

// step does one round of the writer: a chunk if one may go, tail entries
// that are ready, the final frame once the receiver holds every chunk and
// the tail is through the target, else waits for something to change.
func (s *sender) step(ctx context.Context) error {
	st := s.shared()
	if st.done && !s.follow {
		if !s.finalSent {
			return protocolf(s.peer, "done before the final frame")
		}
		return errFinished
	}
	if st.err != nil {
		return st.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.maintain(st)
	did, err := s.sendChunks(ctx, st)
	if err != nil {
		return err
	}
	n, err := s.sendTail(ctx)
	if err != nil || did || n > 0 {
		return err
	}
	if !s.finalSent && s.readyForFinal(st) {
		return s.sendFinal()
	}
	if s.oneWay && s.finalSent {
		return errFinished
	}
	return s.idle(ctx)
}

// sharedState is a copy of what the reader reported.
type sharedState struct {
	credit  format.XferCredit
	nack    uint64
	hasNack bool
	done    bool
	err     error
}

func (s *sender) shared() sharedState {
	if s.oneWay { // no receiver to hear from: what is written counts as received
		return sharedState{credit: format.XferCredit{FirstMissing: s.next, Limit: s.sess.ChunkCount}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := sharedState{credit: s.credit, done: s.done, err: s.err}
	if len(s.nacks) > 0 {
		st.nack, st.hasNack = s.nacks[0], true
		s.nacks = s.nacks[1:]
	}
	return st
}

// sendChunks sends a chunk asked for again, or the next one the credit
// allows.
func (s *sender) sendChunks(ctx context.Context, st sharedState) (bool, error) {
	switch {
	case st.hasNack:
		return true, s.sendChunk(ctx, st.nack, true)
	case s.next < s.sess.ChunkCount && s.next < st.credit.Limit:
		if err := s.sendChunk(ctx, s.next, false); err != nil {
			return false, err
		}
		s.next++
		s.sent.Store(s.next)
		return true, nil
	}
	return false, nil
}

// sendChunk reads chunk seq from the snapshot and writes it.
func (s *sender) sendChunk(ctx context.Context, seq uint64, resend bool) error {
	raw, err := s.readChunk(seq)
	if err != nil {
		return err
	}
	sum := xxhash.Sum64(raw)
	if seq == s.digestNext {
		s.fileSum.Add(sum)
		s.digestNext++
	}
	wire, codec := raw, format.CodecNone
	if s.opts.Compress {
		wire, codec = format.CompressXferChunk(s.zbuf[:0], raw)
		s.zbuf = wire
	}
	c := format.XferChunk{Seq: seq, Offset: seq * uint64(s.sess.ChunkSize), RawLen: uint32(len(raw)),
		WireLen: uint32(len(wire)), Sum: sum, Codec: codec}
	if err := s.bucket.wait(ctx, len(wire)+format.FrameHeaderSize+format.XferChunkSize); err != nil {
		return err
	}
	s.res.ChunkBytes += int64(len(wire))
	if resend {
		s.res.ResentBytes += int64(len(wire))
	}
	return s.w.chunk(c, wire)
}

// readChunk reads chunk seq of the snapshot into the sender's buffer.
func (s *sender) readChunk(seq uint64) ([]byte, error) {
	off := seq * uint64(s.sess.ChunkSize)
	n := min(uint64(s.sess.ChunkSize), s.sess.TotalSize-off)
	if cap(s.chunkBuf) < int(n) {
		s.chunkBuf = make([]byte, s.sess.ChunkSize)
	}
	raw := s.chunkBuf[:n]
	if _, err := s.snap.ReadAt(raw, int64(off)); err != nil && !(err == io.EOF && off+n == s.sess.TotalSize) {
		return nil, fmt.Errorf("kvtool/transfer: read chunk %d of snapshot %s at offset %d: %w", seq, s.sess.Snapshot, off, err)
	}
	return raw, nil
}

// sendTail writes the tail entries that are ready, up to tailBudget bytes;
// before the final frame, none past the target.
func (s *sender) sendTail(ctx context.Context) (int, error) {
	if s.finalSent && !s.follow {
		return 0, nil
	}
	sent := 0
	for sent < tailBudget {
		e, ok, err := s.tail.peek()
		if err == io.EOF || !ok {
			return sent, nil
		} else if err != nil {
			return sent, fmt.Errorf("kvtool/transfer: read the source's log after entry %d: %w", s.lastTail, err)
		}
		if s.targetSet && !s.finalSent && e.Index > s.target {
			return sent, nil
		}
		if e.Index != s.lastTail+1 {
			return sent, fmt.Errorf("kvtool/transfer: the source's log has entry %d after %d", e.Index, s.lastTail)
		}
		if err := s.writeTail(ctx, e.Index, e.Term, e.Type, e.Data); err != nil {
			return sent, err
		}
		s.tail.pop()
		sent += len(e.Data) + format.FrameHeaderSize + 17
	}
	return sent, nil
}

func (s *sender) writeTail(ctx context.Context, idx, term uint64, t format.FrameType, data []byte) error {
	if err := s.bucket.wait(ctx, len(data)+format.FrameHeaderSize+17); err != nil {
		return err
	}
	err := s.w.frame(format.FrameXferTail, func(b []byte) []byte {
		return format.AppendXferTail(b, format.XferTail{Index: idx, Term: term, Type: t, Data: data})
	})
	s.lastTail = idx
	s.res.Entries++
	s.res.TailBytes += int64(len(data))
	return err
}

// readyForFinal reports whether the final frame may go: the receiver holds
// every chunk durably, and the tail is through the target, which is fixed
// (the source's last index) the first time the chunks are complete.
func (s *sender) readyForFinal(st sharedState) bool {
	if st.credit.FirstMissing < s.sess.ChunkCount || st.hasNack || s.next < s.sess.ChunkCount {
		return false
	}
	if !s.targetSet {
		s.target, s.targetSet = max(s.src.LastIndex(), s.lastTail), true
	}
	return s.lastTail >= s.target
}

func (s *sender) sendFinal() error {
	if s.digestNext != s.sess.ChunkCount {
		return fmt.Errorf("kvtool/transfer: internal error: snapshot checksum covers %d of %d chunks", s.digestNext, s.sess.ChunkCount)
	}
	f := format.XferFinal{SnapIndex: s.sess.Snapshot.Index, TotalSize: s.sess.TotalSize, ChunkCount: s.sess.ChunkCount, TailEnd: s.target}
	if !s.res.TailOnly {
		f.FileSum = s.fileSum.Sum64()
	}
	if err := s.w.final(f); err != nil {
		return err
	}
	s.finalSent, s.res.TailEnd = true, s.target
	return s.w.flush()
}

// idle flushes and waits for the reader, the tail, ctx, or the next
// maintenance.
func (s *sender) idle(ctx context.Context) error {
	if err := s.w.flush(); err != nil {
		return err
	}
	t := time.NewTimer(s.opts.RetainEvery)
	defer t.Stop()
	select {
	case <-s.wake:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// maintain renews the pin (moving it up to what the receiver holds) and
// reports progress.
func (s *sender) maintain(st sharedState) {
	if time.Since(s.lastRetain) >= s.opts.RetainEvery {
		s.lastRetain = time.Now()
		held := max(st.credit.WALLast, st.credit.Applied, s.sess.TailFrom-1)
		s.snap.Retain(held, !st.done && !s.res.TailOnly)
	}
	phase := PhaseSnapshot
	if st.done {
		phase = PhaseFollowing
	}
	s.progressWith(phase, st.credit, false)
}

func (s *sender) progress(phase string, force bool) {
	s.mu.Lock()
	c := s.credit
	s.mu.Unlock()
	s.progressWith(phase, c, force)
}

func (s *sender) progressWith(phase string, c format.XferCredit, force bool) {
	if s.opts.Progress == nil || !force && time.Since(s.lastProg) < progressEvery {
		return
	}
	s.lastProg = time.Now()
	s.mu.Lock()
	applied := s.res.Applied // the reader sets it on the done frame
	s.mu.Unlock()
	t := sessionTotals(s.sess, c.FirstMissing)
	s.opts.Progress(Progress{
		Phase: phase, Peer: s.peer, Snapshot: s.sess.Snapshot.String(), Resumed: s.res.ResumeFrom > 0,
		Chunks: s.sess.ChunkCount, ChunksDone: min(c.FirstMissing, s.sess.ChunkCount), Bytes: int64(s.sess.TotalSize),
		BytesDone: t.done, SessionBytes: t.session, Rate: rate(t.session, s.started), BytesSent: s.res.ChunkBytes,
		TailIndex: s.lastTail, AppliedIndex: max(c.Applied, applied),
	})
}

// signal wakes the writer.
func (s *sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// readLoop handles the receiver's frames until the connection ends.
func (s *sender) readLoop() {
	defer close(s.readerDone)
	for {
		f, err := s.r.next()
		if err == nil {
			err = s.onFrame(f.Type, f.Offset, f.Payload)
		}
		if err != nil {
			s.mu.Lock()
			if s.err == nil {
				s.err = err
			}
			s.mu.Unlock()
			s.signal()
			return
		}
		s.signal()
	}
}

// onFrame records one frame from the receiver.
func (s *sender) onFrame(t format.FrameType, off int64, p []byte) error {
	switch t {
	case format.FrameXferCredit:
		c, err := format.DecodeXferCredit(p, s.peer, off)
		if err != nil {
			return err
		}
		return s.onCredit(c, off)
	case format.FrameXferNack:
		n, err := format.DecodeXferNack(p, s.peer, off)
		if err != nil {
			return err
		}
		return s.onNack(n, off)
	case format.FrameXferDone:
		d, err := format.DecodeXferDone(p, s.peer, off)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.done, s.res.Applied = true, d.Applied
		s.mu.Unlock()
		return nil
	case format.FrameXferError:
		return peerError(s.peer, off, p)
	}
	return protocolf(s.peer, "unexpected frame type %d at offset %d", t, off)
}

func (s *sender) onCredit(c format.XferCredit, off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.FirstMissing < s.credit.FirstMissing || c.FirstMissing > s.sess.ChunkCount {
		return protocolf(s.peer, "credit at offset %d moves the first missing chunk from %d to %d", off, s.credit.FirstMissing, c.FirstMissing)
	}
	c.Limit = max(c.Limit, s.credit.Limit)
	s.credit = c
	return nil
}

func (s *sender) onNack(n format.XferNack, off int64) error {
	if n.Seq >= s.sent.Load() {
		return protocolf(s.peer, "nack at offset %d for chunk %d, which was never sent", off, n.Seq)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.nacks, n.Seq) {
		return nil // already queued for a resend
	}
	if len(s.nacks) >= maxQueuedNacks {
		return protocolf(s.peer, "nack at offset %d: more than %d chunks waiting to be resent", off, maxQueuedNacks)
	}
	s.nacks = append(s.nacks, n.Seq)
	return nil
}

// handshakeTimeout bounds the handshake of a connection unless
// SendOptions.HandshakeTimeout says otherwise: it takes two round trips.
const handshakeTimeout = 10 * time.Second

// maxQueuedNacks bounds the chunks waiting to be resent: a receiver cannot
// grow the sender's memory by repeating nacks.
const maxQueuedNacks = 1024

// stopReader ends readLoop and waits for it (see interrupt: on a stream
// without deadlines this closes conn). On a stream that can neither take
// a deadline nor be closed, the reader ends with the stream.
func (s *sender) stopReader() {
	select {
	case <-s.readerDone:
		return
	default:
	}
	undo, ok := interrupt(s.conn)
	if !ok {
		return
	}
	<-s.readerDone
	undo()
}

// abort ends the session with err, telling the receiver why (best effort).
func (s *sender) abort(err error) error {
	if err == nil || errors.Is(err, errFinished) {
		return nil
	}
	if !isPeerSide(err) && !s.oneWay && !errors.Is(err, context.Canceled) {
		s.writeHeader(format.XferDuplex)
		sendError(s.w, err)
	}
	return err
}
