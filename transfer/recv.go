package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// Defaults of ReceiveOptions and SendOptions.
const (
	DefaultChunkSize = 1 << 20
	// DefaultWindow lets the receiver sync 16 MiB at a time (a flush
	// starts at half the window): with 8 MiB, its two fsyncs per 4 MiB
	// stalled the sender, and streaming ran at about half the rate.
	DefaultWindow = 32 << 20
	// maxNacks is how often one chunk may fail its checksum before the
	// receiver gives up on the stream.
	maxNacks = 3
)

// Replica is a store that applies its source's log: a read replica
// (*store.Store opened with Replica). Receive gets one from
// ReceiveOptions.Open once the directory holds a complete store.
type Replica interface {
	// LastIndex is the last index in the store's log.
	LastIndex() uint64
	// EnqueueEntry appends the source's entry e (Index = LastIndex()+1)
	// and returns a func that returns once it is durable and published.
	// Entries enqueued back to back share fsyncs.
	EnqueueEntry(ctx context.Context, e segment.Entry) (wait func() error, err error)
}

// ReceiveOptions configure Receive and ReadStream.
type ReceiveOptions struct {
	FS     vfs.FS // default vfs.Default
	Dir    string // the data directory to fill
	Secret Secret
	Peer   string // names the sender in errors and progress
	// Window is the chunk bytes the sender may have in flight beyond what
	// is durable here: the most a resume sends twice. Default DefaultWindow.
	Window int64
	// Follow keeps the session open after cutover and applies the source's
	// log through Open's replica (serve --join).
	Follow bool
	// Open returns the store of Dir once it is complete: after cutover
	// (with Follow), or at once if Dir already holds a store (to catch it
	// up). The caller owns it; Receive never closes it. Without Open a
	// directory that holds a store is refused (ErrNotEmpty).
	Open func() (Replica, error)
	// Progress, if set, is called as the transfer advances.
	Progress func(Progress)
	// CreditEvery is how often the receiver reports what it holds when no
	// chunk prompts it (tail entries, or a replica applying the log): how
	// far the source's lease on its log may lag. Default one second;
	// tests make it short.
	CreditEvery time.Duration
	// CheckpointBlocks, if set, is called as the cutover verifies the
	// assembled checkpoint (described by info) and returns where its
	// blocks go as the verification decodes them (table.VerifyOptions.Block):
	// a caller that loads the snapshot next (a cluster member installing
	// it) keeps them instead of decoding the file again. What it was given
	// is good only if Receive then returns with CutOver and no error; a
	// cutover an earlier session verified does not call it.
	CheckpointBlocks func(info checkpoint.Info) func(*format.Block) error

	// hmacTags, for tests, makes the receiver not offer GCM tags, as a
	// receiver older than them does not.
	hmacTags bool
}

func (o *ReceiveOptions) fill() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Peer == "" {
		o.Peer = "sender"
	}
}

// ReceiveResult says what a Receive did.
type ReceiveResult struct {
	Snapshot   format.XferSnapshotID `json:"snapshot"`
	Resumed    bool                  `json:"resumed"`              // the session continued a partial snapshot
	ResumeFrom uint64                `json:"resume_from"`          // first chunk of this session
	Restarted  bool                  `json:"restarted"`            // the partial snapshot was gone at the source: started over
	TailOnly   bool                  `json:"tail_only"`            // no snapshot: a complete store caught up
	Chunks     uint64                `json:"chunks"`               // chunks of the snapshot
	ChunkBytes int64                 `json:"chunk_bytes_received"` // chunk bytes received in this session, resends included
	Nacks      int                   `json:"nacks"`                // chunks asked for again
	Entries    int64                 `json:"tail_entries"`         // tail entries received
	CutOver    bool                  `json:"cut_over"`             // the directory was installed and cut over
	Applied    uint64                `json:"applied_index"`        // the index the store stood at when this session ended
	// SourceAPI is the source's HTTP API address, as its hello said ("":
	// it did not, an older sender or one without an API).
	SourceAPI string `json:"source_api,omitempty"`
	// The snapshot's bytes as both ends count them (see totals.go): held
	// here at the end, moved by this session, and its rate in bytes per
	// second.
	BytesDone    int64 `json:"bytes_done"`
	SessionBytes int64 `json:"session_bytes"`
	Rate         int64 `json:"rate"`
}

// Receive authenticates the sender on conn, then receives a snapshot and
// its WAL tail into opts.Dir, resuming a partial snapshot left there by an
// earlier session, and cuts over once all of it verified. With
// opts.Follow it then keeps applying the source's log until conn ends.
//
// Nothing under opts.Dir is created or changed before the sender proved
// the secret. On a broken connection it returns an error wrapping
// ErrPeerGone and everything verified stays on disk for the next session.
// If ctx is done, Receive returns promptly when conn is a net.Conn (it
// sets a deadline on it); it does not close conn, unless conn takes no
// deadline: then closing it is the only way to stop reading it, and
// Receive closes it when cancelled and before it returns.
func Receive(ctx context.Context, conn io.ReadWriter, opts ReceiveOptions) (ReceiveResult, error) {
	opts.fill()
	if opts.Secret.IsZero() {
		return ReceiveResult{}, ErrNoSecret
	}
	defer watch(ctx, conn)()
	rv := &receiver{opts: opts, peer: opts.Peer, duplex: true, conn: conn,
		r: newFrameReader(conn, opts.Peer, true), w: newFrameWriter(conn, opts.Peer, true)}
	defer rv.release()
	err := rv.runDuplex(ctx)
	rv.finishTotals()
	return rv.res, contextErr(ctx, err)
}

// receiver is one receiving session.
type receiver struct {
	// unsettled waits for the replica's last enqueued entry, unsettledIndex;
	// nil when every entry given to the replica is settled (see settle).
	unsettled      func() error
	unsettledIndex uint64
	// marked is set once a one-way stream has marked the partial
	// unverified (format.XferUnverifiedName).
	marked bool

	opts   ReceiveOptions
	peer   string
	duplex bool
	conn   any
	r      *frameReader
	w      *frameWriter // nil for a one-way stream
	ra     *readAhead   // reads r once the session started

	lock    io.Closer // DATA/LOCK while a partial snapshot is open
	p       *partial
	replica Replica
	held    heldState
	sess    format.XferSession
	res     ReceiveResult

	windowChunks uint64
	granted      uint64 // chunks below this seq may be sent (duplex)
	highest      uint64 // one past the highest chunk seq received
	nacks        map[uint64]int
	outstanding  int // nacked chunks not yet received again
	zbuf         []byte
	lastCredit   time.Time
	lastProgress time.Time
	started      time.Time // when the session frame arrived
}

// heldState is what the data directory already holds.
type heldState struct {
	storeID [16]byte
	epoch   uint64
	term    uint64
	known   bool   // storeID, epoch and term are set
	store   bool   // a complete store (a manifest)
	walLast uint64 // its last index
}

func (rv *receiver) runDuplex(ctx context.Context) error {
	// A connection that proves nothing must not hold the receiver for ever
	// (recv --listen takes one connection): the handshake has a deadline.
	lift := limit(rv.conn, handshakeTimeout)
	ns, nr, err := rv.handshake()
	lift()
	if err != nil {
		return rv.abort(err)
	}
	if err := rv.loadLocal(); err != nil {
		return rv.abort(err)
	}
	if err := rv.recordSource(); err != nil {
		return rv.abort(err)
	}
	if err := rv.sendRequest(ns, nr); err != nil {
		return rv.abort(err)
	}
	sess, err := rv.readSession()
	if err != nil {
		return rv.abort(err)
	}
	if err := rv.start(sess); err != nil {
		return rv.abort(err)
	}
	return rv.abort(rv.loop(ctx))
}

// handshake sends the receiver's hello and checks the sender's proof. It
// touches nothing on disk.
func (rv *receiver) handshake() (ns, nr [format.XferNonceSize]byte, err error) {
	nr = newNonce()
	features := format.XferFeatureSenderAPI | format.XferFeatureGCMTags
	if rv.opts.hmacTags {
		features &^= format.XferFeatureGCMTags
	}
	rv.w.header(format.XferReceiver, format.XferDuplex)
	rv.w.frame(format.FrameXferHello, func(b []byte) []byte {
		return format.AppendXferHello(b, format.ReceiverHello(helloVersion, nr, features))
	})
	if err := rv.w.flush(); err != nil {
		return ns, nr, err
	}
	if err := rv.r.header(format.XferSender, format.XferDuplex); err != nil {
		return ns, nr, err
	}
	f, err := expect(rv.r, format.FrameXferHello, rv.peer)
	if err != nil {
		return ns, nr, err
	}
	h, err := format.DecodeXferHello(f.Payload, rv.peer, f.Offset)
	if err != nil {
		return ns, nr, err
	}
	// Every frame from here on carries a tag under keys only holders of
	// the secret can derive; an error frame too, so a sender with another
	// secret sees ErrAuth either way.
	// A sender that took the offer of GCM tags answers with version 3.
	scheme, want := tagHMAC, helloVersion
	if h.Version == gcmHelloVersion && features&format.XferFeatureGCMTags != 0 {
		scheme, want = tagGCM, gcmHelloVersion
	}
	toR, toS := rv.opts.Secret.frameKeys(nr, h.Nonce, scheme)
	rv.r.auth, rv.w.auth = newFrameAuth(toR, scheme), newFrameAuth(toS, scheme)
	if err := checkVersion(h.Version, want, rv.peer); err != nil {
		return ns, nr, err
	}
	if h.Role != format.XferSender || !validProof(h.Proof, rv.opts.Secret.senderProof(nr, h.Nonce, format.XferHelloExt(h))) {
		return ns, nr, fmt.Errorf("%w (%s)", ErrAuth, rv.peer)
	}
	rv.res.SourceAPI = sourceAPI(h.API, rv.peer)
	return h.Nonce, nr, nil
}

// checkVersion checks the protocol version v the peer announced (in its
// hello, or a one-way session) against the one this build speaks.
func checkVersion(v, want uint16, peer string) error {
	if v != want {
		return protocolf(peer, "speaks transfer protocol version %d, this kvtool speaks %d (use the same kvtool version on both ends)", v, want)
	}
	return nil
}

// loadLocal reads what the data directory holds: a complete store (which
// Open opens), or a partial snapshot (under the directory's lock).
func (rv *receiver) loadLocal() error {
	fs, dir := rv.opts.FS, rv.opts.Dir
	m, err := manifest.Load(fs, dir)
	switch {
	case err == nil:
		return rv.loadStore(m)
	case !errors.Is(err, manifest.ErrNotFound):
		return err
	}
	if err := rv.lockDir(); err != nil {
		return err
	}
	if rv.p, err = findPartial(fs, dir); err != nil {
		return err
	}
	if rv.p == nil {
		return rv.checkNoStrayWAL()
	}
	s := rv.p.sess
	rv.held = heldState{storeID: s.StoreID, epoch: s.Epoch, term: s.Term, known: true}
	return nil
}

// loadStore opens the complete store in the directory, to catch it up.
func (rv *receiver) loadStore(m *manifest.Manifest) error {
	if rv.opts.Open == nil {
		return fmt.Errorf("%w: %s (store %s)", ErrNotEmpty, rv.opts.Dir, m.StoreID)
	}
	rep, err := rv.opts.Open()
	if err != nil {
		return fmt.Errorf("%w: open %s: %w", ErrLocalStore, rv.opts.Dir, err)
	}
	rv.replica = rep
	rv.held = heldState{storeID: m.StoreID, epoch: m.Epoch, known: true, store: true, walLast: rep.LastIndex()}
	return removeSessions(rv.opts.FS, rv.opts.Dir)
}

// removeSessions removes the session directories of a directory that holds
// a store: what a crash between the manifest's publication and the end of
// a cutover left behind.
func removeSessions(fs vfs.FS, dir string) error {
	names, _ := fs.List(transferDir(dir))
	for _, name := range names {
		if _, ok := format.ParseXferSessionDir(name); ok {
			if err := removeTree(fs, filepath.Join(transferDir(dir), name)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (rv *receiver) lockDir() error {
	fs, dir := rv.opts.FS, rv.opts.Dir
	if err := mkdirDurable(fs, dir); err != nil {
		return err
	}
	l, err := fs.Lock(filepath.Join(dir, format.LockName))
	if err != nil {
		return fmt.Errorf("data directory %s is in use: %w", dir, err)
	}
	rv.lock = l
	return nil
}

// checkNoStrayWAL refuses a directory whose WAL holds segments that no
// manifest and no transfer explain: somebody's data, not ours to replace.
func (rv *receiver) checkNoStrayWAL() error {
	names, _ := rv.opts.FS.List(walDir(rv.opts.Dir))
	for _, n := range names {
		if _, ok := format.ParseSegmentName(n); ok {
			return fmt.Errorf("kvtool/transfer: %s has WAL segments but no %s and no transfer in progress: refusing to replace them (move them away, or run `kvtool verify`)",
				rv.opts.Dir, format.ManifestName)
		}
	}
	return nil
}

// sendRequest proves the secret and says what the directory holds.
func (rv *receiver) sendRequest(ns, nr [format.XferNonceSize]byte) error {
	req := format.XferRequest{Proof: rv.opts.Secret.receiverProof(ns, nr), Window: uint64(rv.opts.Window)}
	if rv.held.known {
		req.StoreID, req.Epoch, req.Term = rv.held.storeID, rv.held.epoch, rv.held.term
	}
	switch {
	case rv.held.store:
		req.Flags |= format.XferHaveStore
		req.WALLast = rv.held.walLast
	case rv.p != nil:
		req.Flags |= format.XferHavePartial
		req.Snapshot, req.ChunkSize, req.FirstMissing = rv.p.id(), rv.p.sess.ChunkSize, rv.p.firstMissing
		req.WALLast = rv.p.walLast()
	}
	if rv.opts.Follow {
		req.Flags |= format.XferFollow
	}
	rv.w.frame(format.FrameXferRequest, func(b []byte) []byte { return format.AppendXferRequest(b, req) })
	return rv.w.flush()
}

// readSession reads and checks the session header.
func (rv *receiver) readSession() (format.XferSession, error) {
	f, err := expect(rv.r, format.FrameXferSession, rv.peer)
	if err != nil {
		return format.XferSession{}, err
	}
	sess, err := format.DecodeXferSession(f.Payload, rv.peer, f.Offset)
	if err != nil {
		return sess, err
	}
	return sess, checkVersion(sess.Version, format.XferProtocol, rv.peer)
}

// checkIdentity refuses a stream from another store, or from an older
// epoch or term than the directory has seen.
func (rv *receiver) checkIdentity(sess format.XferSession) error {
	h := rv.held
	switch {
	case !h.known:
		return nil
	case sess.StoreID != h.storeID:
		return fmt.Errorf("%w: %s sends store %s, %s holds store %s", ErrStoreMismatch, rv.peer,
			manifest.StoreID(sess.StoreID), rv.opts.Dir, manifest.StoreID(h.storeID))
	case sess.Epoch < h.epoch || sess.Epoch == h.epoch && sess.Term < h.term:
		return fmt.Errorf("%w: %s sends epoch %d term %d, %s has seen epoch %d term %d", ErrStaleEpoch, rv.peer,
			sess.Epoch, sess.Term, rv.opts.Dir, h.epoch, h.term)
	}
	return nil
}

// start sets the session up: a tail-only catch-up of the store, a resume
// of the partial snapshot, or a new snapshot (discarding the partial one).
func (rv *receiver) start(sess format.XferSession) error {
	if err := rv.checkIdentity(sess); err != nil {
		return err
	}
	rv.sess, rv.started = sess, time.Now()
	rv.res.Snapshot, rv.res.Chunks, rv.res.ResumeFrom = sess.Snapshot, sess.ChunkCount, sess.ResumeFrom
	rv.res.Restarted = sess.Flags&format.XferRestarted != 0
	if sess.Flags&format.XferTailOnly != 0 {
		return rv.startTailOnly(sess)
	}
	if rv.held.store {
		return fmt.Errorf("%w: %s offers a whole snapshot, but %s holds a store that can only be caught up", ErrNotEmpty, rv.peer, rv.opts.Dir)
	}
	if err := rv.openPartial(sess); err != nil {
		return err
	}
	rv.windowChunks = max(1, uint64(rv.opts.Window)/uint64(sess.ChunkSize))
	rv.granted = sess.ResumeFrom + rv.windowChunks
	rv.highest = sess.ResumeFrom
	rv.nacks = map[uint64]int{}
	rv.progress(PhaseSnapshot, true)
	return nil
}

func (rv *receiver) startTailOnly(sess format.XferSession) error {
	rv.res.TailOnly = true
	if !rv.held.store {
		return protocolf(rv.peer, "tail-only session for a directory without a store")
	}
	if sess.TailFrom != rv.held.walLast+1 {
		return protocolf(rv.peer, "tail starts at %d, the store ends at %d", sess.TailFrom, rv.held.walLast)
	}
	rv.progress(PhaseFollowing, true)
	return nil
}

// openPartial resumes the partial snapshot if the session continues it,
// and otherwise replaces it with a new one.
func (rv *receiver) openPartial(sess format.XferSession) error {
	p := rv.p
	if p != nil && p.id() == sess.Snapshot && sess.Flags&format.XferRestarted == 0 && p.sess.ChunkSize == sess.ChunkSize {
		if sess.ResumeFrom > p.firstMissing {
			return protocolf(rv.peer, "resumes at chunk %d, but chunk %d is missing here", sess.ResumeFrom, p.firstMissing)
		}
		if want := max(p.walLast(), sess.Snapshot.Index) + 1; rv.duplex && sess.TailFrom != want {
			return protocolf(rv.peer, "tail resumes at entry %d, want %d", sess.TailFrom, want)
		}
		rv.res.Resumed = true
		return nil
	}
	if p != nil {
		rv.p = nil
		if err := p.discard(); err != nil {
			return err
		}
	}
	if sess.ResumeFrom != 0 || sess.TailFrom != sess.Snapshot.Index+1 {
		return protocolf(rv.peer, "a new snapshot must start at chunk 0 and entry %d", sess.Snapshot.Index+1)
	}
	np, err := newPartial(rv.opts.FS, rv.opts.Dir, sess)
	if err != nil {
		return err
	}
	rv.p = np
	return nil
}

// loop handles the sender's frames until the session ends. A read-ahead
// goroutine reads them, so the connection keeps draining while chunks are
// written here, and a background flush (partial.startFlush) syncs written
// chunks while the next ones are written; loop credits them when it ends.
func (rv *receiver) loop(ctx context.Context) (err error) {
	defer func() {
		// A flush still running when the session ends counts (or fails)
		// before the result says what is durable here.
		if rv.p != nil {
			if ferr := rv.p.waitFlush(); err == nil {
				err = ferr
			}
		}
	}()
	budget := int(max(rv.opts.Window, 4*int64(rv.sess.ChunkSize)))
	rv.ra = startReadAhead(rv.r, rv.conn, max(rv.sess.ChunkSize, format.MinXferChunk), budget)
	for { // release stops the read-ahead, after abort told the sender why
		var f inFrame
		select {
		case err := <-rv.flushDone():
			if err := rv.onFlushed(err); err != nil {
				return err
			}
			continue
		case f = <-rv.ra.ch:
			if f.err != nil {
				return f.err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		switch f.t {
		case format.FrameXferChunk:
			err = rv.onChunk(f)
		case format.FrameXferTail:
			err = rv.onTail(ctx, f.off, f.p)
		case format.FrameXferFinal:
			err = rv.onFinal(ctx, f)
		case format.FrameXferError:
			err = peerError(rv.peer, f.off, f.p)
		default:
			err = protocolf(rv.peer, "unexpected frame type %d at offset %d", f.t, f.off)
		}
		rv.ra.release(f)
		if err != nil {
			return err
		}
	}
}

// onChunk checks a chunk against the session and its checksum, then writes
// it (or asks for it again).
func (rv *receiver) onChunk(f inFrame) error {
	c, err := format.DecodeXferChunk(f.p, rv.peer, f.off)
	if err != nil {
		return err
	}
	if rv.p == nil {
		return protocolf(rv.peer, "chunk %d at offset %d arrived when no snapshot is being received (after cutover, or in a tail-only session)", c.Seq, f.off)
	}
	if err := rv.checkChunk(c, f.off); err != nil {
		return err
	}
	rv.res.ChunkBytes += int64(c.WireLen)
	rv.highest = max(rv.highest, c.Seq+1)
	raw, reason := rv.decode(c, f.data)
	if reason != 0 {
		return rv.badChunk(c, f.off, reason) // damage, which also explains a tag that fails
	}
	if f.forged { // checksums recomputed to match: not damage
		return forged(rv.peer, f.off, format.FrameXferChunk)
	}
	if rv.nacks[c.Seq] > 0 {
		delete(rv.nacks, c.Seq)
		rv.outstanding--
	}
	if !rv.p.verified(c.Seq) {
		if err := rv.p.addChunk(c, raw); err != nil {
			return err
		}
	}
	return rv.maybeFlush()
}

// checkChunk checks a chunk header against the session geometry and, on a
// connection, against the credit granted.
func (rv *receiver) checkChunk(c format.XferChunk, off int64) error {
	s := rv.sess
	switch {
	case c.Seq >= s.ChunkCount || c.Offset != c.Seq*uint64(s.ChunkSize) || uint64(c.RawLen) != rv.p.chunkLen(c.Seq):
		return format.Corruptf(rv.peer, off, "chunk %d at offset %d of %d bytes does not fit %d chunks of %d bytes",
			c.Seq, c.Offset, c.RawLen, s.ChunkCount, s.ChunkSize)
	case c.WireLen > s.ChunkSize:
		return format.Corruptf(rv.peer, off, "chunk %d has %d wire bytes, more than the chunk size %d", c.Seq, c.WireLen, s.ChunkSize)
	case rv.duplex && c.Seq >= rv.granted:
		return protocolf(rv.peer, "chunk %d sent beyond the credit (chunks below %d)", c.Seq, rv.granted)
	}
	return nil
}

// decode returns the chunk's raw bytes, or the reason they are bad.
func (rv *receiver) decode(c format.XferChunk, wire []byte) ([]byte, uint8) {
	raw := wire
	if c.Codec == format.CodecZstd {
		var err error
		if raw, err = format.DecompressXferChunk(rv.zbuf, wire, int(c.RawLen)); err != nil {
			return nil, format.XferNackDecode
		}
		rv.zbuf = raw
	}
	if xxhash.Sum64(raw) != c.Sum {
		return nil, format.XferNackChecksum
	}
	return raw, 0
}

// badChunk asks for a damaged chunk again, up to maxNacks times; a one-way
// stream cannot resend, so there the damage ends the session.
func (rv *receiver) badChunk(c format.XferChunk, off int64, reason uint8) error {
	what := "failed its xxh64 checksum"
	if reason == format.XferNackDecode {
		what = "did not decompress"
	}
	n := rv.nacks[c.Seq]
	if !rv.duplex || n >= maxNacks {
		return format.Corruptf(rv.peer, off, "chunk %d (snapshot offset %d) %s %d times", c.Seq, c.Offset, what, n+1)
	}
	if n == 0 {
		rv.outstanding++
	}
	rv.nacks[c.Seq] = n + 1
	rv.res.Nacks++
	rv.w.frame(format.FrameXferNack, func(b []byte) []byte {
		return format.AppendXferNack(b, format.XferNack{Seq: c.Seq, Reason: reason})
	})
	return rv.w.flush()
}

// maybeFlush starts making the pending chunks durable (onFlushed grants
// the credit once they are) when enough bytes are pending, or when the
// sender is about to stall: it has sent all it may (or all there is) and
// owes no resend.
func (rv *receiver) maybeFlush() error {
	p := rv.p
	stalled := rv.highest >= rv.sess.ChunkCount || rv.duplex && rv.highest >= rv.granted
	stalled = stalled && rv.outstanding == 0
	if p.pendingBytes < rv.opts.Window/2 && !(stalled && len(p.pending) > 0) {
		return nil
	}
	p.startFlush() // if one runs already, onFlushed comes back here when it ends
	return nil
}

// flushDone delivers the result of the partial's background flush (nil
// when none runs).
func (rv *receiver) flushDone() <-chan error {
	if rv.p == nil {
		return nil
	}
	return rv.p.flushDone()
}

// onFlushed credits what a background flush made durable, and starts the
// next flush if enough is pending again.
func (rv *receiver) onFlushed(err error) error {
	if err := rv.p.endFlush(err); err != nil {
		return err
	}
	rv.progress(PhaseSnapshot, false)
	if err := rv.credit(0); err != nil {
		return err
	}
	return rv.maybeFlush()
}

// credit tells the sender what is durable here and what it may send.
func (rv *receiver) credit(applied uint64) error {
	if !rv.duplex {
		return nil
	}
	n := rv.sess.ChunkCount // cut over (or tail-only): every chunk is in
	c := format.XferCredit{FirstMissing: n, Limit: n, Applied: applied, WALLast: applied}
	if rv.p != nil {
		rv.granted = max(rv.granted, rv.p.firstMissing+rv.windowChunks)
		c.FirstMissing, c.Limit, c.WALLast = rv.p.firstMissing, rv.granted, rv.p.walLast()
	}
	rv.lastCredit = time.Now()
	rv.w.frame(format.FrameXferCredit, func(b []byte) []byte { return format.AppendXferCredit(b, c) })
	return rv.w.flush()
}

// onTail spills a tail entry into the WAL (before cutover) or applies it
// to the replica (after).
func (rv *receiver) onTail(ctx context.Context, off int64, payload []byte) error {
	t, err := format.DecodeXferTail(payload, rv.peer, off)
	if err != nil {
		return err
	}
	rv.res.Entries++
	if rv.replica != nil {
		return rv.apply(ctx, t)
	}
	if t.Index < rv.sess.TailFrom && rv.duplex {
		return protocolf(rv.peer, "tail entry %d before the session's first, %d", t.Index, rv.sess.TailFrom)
	}
	if err := rv.p.addTail(t, rv.peer); err != nil {
		return err
	}
	if rv.duplex && time.Since(rv.lastCredit) > rv.creditEvery() {
		return rv.credit(0) // lets the source's lease move past what is durable here
	}
	return nil
}

// creditEvery is ReceiveOptions.CreditEvery's default. A variable so this
// package's tests can make it short.
var creditEvery = time.Second

func (rv *receiver) creditEvery() time.Duration {
	if rv.opts.CreditEvery > 0 {
		return rv.opts.CreditEvery
	}
	return creditEvery
}

// apply applies a tail entry to the replica.
func (rv *receiver) apply(ctx context.Context, t format.XferTail) error {
	last := rv.replica.LastIndex()
	if t.Index <= last {
		return nil // already have it (resent after a reconnect)
	}
	e := segment.Entry{Index: t.Index, Term: t.Term, Type: t.Type, Data: t.Data}
	wait, err := rv.replica.EnqueueEntry(ctx, e)
	if err != nil {
		return rv.localStoreErr(t.Index, err)
	}
	// Entries are not waited for one by one (that would be one fsync
	// each): only before the receiver reports what it holds.
	rv.unsettled, rv.unsettledIndex = wait, t.Index
	report := rv.opts.Progress != nil && time.Since(rv.lastProgress) > progressEvery
	credit := time.Since(rv.lastCredit) > rv.creditEvery()
	if !report && !credit {
		return nil
	}
	if err := rv.settle(); err != nil {
		return err
	}
	if report {
		rv.progress(PhaseFollowing, true)
	}
	if credit {
		return rv.credit(rv.res.Applied)
	}
	return nil
}

// settle waits until the entries the replica was given are durable and
// published, and only then counts them applied.
func (rv *receiver) settle() error {
	if rv.unsettled == nil {
		return nil
	}
	wait := rv.unsettled
	rv.unsettled = nil
	if err := wait(); err != nil {
		return rv.localStoreErr(rv.unsettledIndex, err)
	}
	rv.res.Applied = rv.unsettledIndex
	return nil
}

// localStoreErr is the error of the replica failing to apply entry index.
func (rv *receiver) localStoreErr(index uint64, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: apply entry %d from %s: %w", ErrLocalStore, index, rv.peer, err)
}

// onFinal checks the final frame, cuts over and answers done. Without
// Follow that ends the session.
func (rv *receiver) onFinal(ctx context.Context, in inFrame) error {
	off := in.off
	f, err := format.DecodeXferFinal(in.p, rv.peer, off)
	if err != nil {
		return err
	}
	if rv.res.TailOnly || rv.replica != nil {
		return rv.caughtUp(f, off)
	}
	if err := rv.p.checkFinal(f, rv.peer, off); err != nil {
		return err
	}
	if err := rv.checkMAC(f, in.mac, off); err != nil {
		return err
	}
	if err := rv.cutover(f); err != nil {
		return err
	}
	return rv.done()
}

// caughtUp handles the final frame of a tail-only session: the store holds
// the tail through f.TailEnd.
func (rv *receiver) caughtUp(f format.XferFinal, off int64) error {
	if err := rv.settle(); err != nil {
		return err
	}
	if last := rv.replica.LastIndex(); last < f.TailEnd {
		return protocolf(rv.peer, "final frame at offset %d says the tail ends at %d, the store is at %d", off, f.TailEnd, last)
	}
	rv.res.Applied = rv.replica.LastIndex()
	return rv.done()
}

// checkMAC checks a one-way stream's MAC (duplex streams carry none).
func (rv *receiver) checkMAC(f format.XferFinal, mac []byte, off int64) error {
	if rv.duplex {
		return nil
	}
	var want [format.XferMACSize]byte
	copy(want[:], mac)
	if !validProof(f.MAC, want) {
		return fmt.Errorf("%w: the stream's MAC at offset %d does not match (wrong secret, or the stream was altered)", ErrAuth, off)
	}
	return nil
}

// cutover installs the snapshot and, with Follow, opens the replica.
func (rv *receiver) cutover(f format.XferFinal) error {
	rv.progress(PhaseCutover, true)
	last, err := rv.p.install(f, rv.peer, rv.opts.CheckpointBlocks)
	if err != nil {
		return err
	}
	rv.p = nil
	rv.res.CutOver, rv.res.Applied = true, last
	rv.unlock()
	if !rv.opts.Follow {
		return nil
	}
	rep, err := rv.opts.Open()
	if err != nil {
		return fmt.Errorf("%w: open the installed store in %s: %w", ErrLocalStore, rv.opts.Dir, err)
	}
	rv.replica = rep
	return nil
}

// done tells the sender the directory is complete; without Follow that
// ends the session.
func (rv *receiver) done() error {
	if err := rv.settle(); err != nil {
		return err
	}
	if rv.duplex {
		rv.w.frame(format.FrameXferDone, func(b []byte) []byte {
			return format.AppendXferDone(b, format.XferDone{Applied: rv.res.Applied})
		})
		if err := rv.w.flush(); err != nil && rv.opts.Follow {
			return err
		} // without Follow the directory is complete whether or not the sender hears so
	}
	if !rv.opts.Follow {
		rv.progress(PhaseDone, true)
		return errFinished
	}
	rv.progress(PhaseFollowing, true)
	return nil
}

// abort ends the session with err: it tells the sender why (best effort)
// and returns err (nil for a finished session).
func (rv *receiver) abort(err error) error {
	if err == nil || errors.Is(err, errFinished) {
		return nil
	}
	if rv.w != nil && !isPeerSide(err) && !errors.Is(err, context.Canceled) {
		sendError(rv.w, err)
	}
	return err
}

// release stops the read-ahead (see interrupt: on a stream without
// deadlines this closes it), closes the partial snapshot and unlocks the
// directory.
func (rv *receiver) release() {
	if rv.ra != nil {
		rv.ra.stop()
		rv.ra = nil
	}
	if rv.p != nil {
		rv.p.close()
		rv.p = nil
	}
	rv.unlock()
}

func (rv *receiver) unlock() {
	if rv.lock != nil {
		rv.lock.Close()
		rv.lock = nil
	}
}

// progressEvery throttles Progress calls.
const progressEvery = 100 * time.Millisecond

// progress reports the session's state (at most every progressEvery
// unless force).
func (rv *receiver) progress(phase string, force bool) {
	if rv.opts.Progress == nil || !force && time.Since(rv.lastProgress) < progressEvery {
		return
	}
	rv.lastProgress = time.Now()
	pr := Progress{Phase: phase, Peer: rv.peer, SourceAPI: rv.res.SourceAPI, Resumed: rv.res.Resumed, Chunks: rv.sess.ChunkCount,
		Bytes: int64(rv.sess.TotalSize), BytesSent: rv.res.ChunkBytes, AppliedIndex: rv.res.Applied}
	if !rv.sess.Snapshot.IsZero() {
		pr.Snapshot = rv.sess.Snapshot.String()
	}
	if rv.p != nil {
		pr.ChunksDone, pr.TailIndex = rv.p.firstMissing, rv.p.log.LastIndex()
	} else if rv.res.CutOver || rv.res.TailOnly {
		pr.ChunksDone, pr.TailIndex = pr.Chunks, rv.res.Applied
	}
	t := rv.totals()
	pr.BytesDone, pr.SessionBytes, pr.Rate = t.done, t.session, rate(t.session, rv.started)
	rv.opts.Progress(pr)
}
