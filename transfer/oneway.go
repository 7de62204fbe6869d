package transfer

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
)

// WriteStream writes a one-way stream of a new snapshot of src and its log
// tail to w: for a pipe (`kvtool transfer send --to -`) or a file that
// ReadStream or VerifyStream reads later. Nothing comes back, so there is
// no handshake, credit or resume; instead the session header carries an
// HMAC of itself under the secret (a receiver with another secret rejects
// the stream before writing anything), and the final frame an HMAC of
// every byte before it. The tail runs to the source's last index at the
// time the last chunk was written.
func WriteStream(ctx context.Context, w io.Writer, src Source, opts SendOptions) (SendResult, error) {
	opts.fill()
	if opts.Secret.IsZero() {
		return SendResult{}, ErrNoSecret
	}
	s := newSender(w, src, opts, false)
	s.oneWay = true
	s.w.mac = opts.Secret.newMAC(labelOneWayStream)
	err := s.runOneWay(ctx)
	s.res.WireBytes = s.w.written()
	s.finishTotals()
	return s.res, contextErr(ctx, err)
}

func (s *sender) runOneWay(ctx context.Context) error {
	s.writeHeader(format.XferOneWay)
	if err := s.open(ctx, format.XferRequest{}); err != nil {
		s.releaseFailedOpen()
		return err
	}
	defer s.snap.Release(true)
	s.sess.Nonce = newNonce()
	s.sess.Proof = s.opts.Secret.sessionProof(s.sess)
	if err := s.writeSession(); err != nil {
		return err
	}
	if err := s.stream(ctx); err != nil {
		return err
	}
	return s.w.flush()
}

// ReadStream receives a one-way stream (WriteStream) from r into
// opts.Dir and cuts over once the snapshot, the tail and the stream's MAC
// verified. If opts.Dir holds part of the same snapshot from an earlier
// stream, the chunks it verified are not written again. A stream whose
// session proof does not match the secret is rejected before anything is
// written. Before it returns it stops reading r: if r takes no deadline
// and is an io.Closer, by closing it.
func ReadStream(ctx context.Context, r io.Reader, opts ReceiveOptions) (ReceiveResult, error) {
	opts.fill()
	if opts.Secret.IsZero() {
		return ReceiveResult{}, ErrNoSecret
	}
	rv := &receiver{opts: opts, peer: opts.Peer, conn: r, r: newFrameReader(r, opts.Peer, true)}
	rv.r.mac = opts.Secret.newMAC(labelOneWayStream)
	rv.opts.Follow = false
	defer rv.release()
	err := rv.abort(rv.runOneWay(ctx))
	rv.finishTotals()
	if err != nil && rv.marked && rv.p != nil {
		// Nothing this stream wrote is kept: its chunks and tail were
		// covered only by the MAC it never delivered.
		if derr := rv.p.discard(); derr == nil {
			rv.p = nil
		}
	}
	return rv.res, contextErr(ctx, err)
}

func (rv *receiver) runOneWay(ctx context.Context) error {
	if err := rv.r.header(format.XferSender, format.XferOneWay); err != nil {
		return err
	}
	sess, err := rv.readSession()
	if err != nil {
		return err
	}
	if !validProof(sess.Proof, rv.opts.Secret.sessionProof(sess)) {
		return fmt.Errorf("%w: the session header of %s is not signed with this secret", ErrAuth, rv.peer)
	}
	if sess.Flags != 0 || sess.ResumeFrom != 0 {
		return protocolf(rv.peer, "one-way session with flags %#x resuming at chunk %d", sess.Flags, sess.ResumeFrom)
	}
	if err := rv.loadLocal(); err != nil {
		return err
	}
	if err := rv.start(sess); err != nil {
		return err
	}
	// Only the final frame's MAC authenticates a one-way stream's chunks
	// and tail, so before it writes any, the stream marks the partial
	// unverified, durably. A later session discards a marked partial (see
	// loadPartial), and a failed stream discards it at once: a replayed
	// session header followed by forged frames can cost a partial, never
	// plant data.
	if rv.p != nil {
		mark := filepath.Join(rv.p.sdir, format.XferUnverifiedName)
		if err := format.WriteFileAtomic(rv.opts.FS, mark, []byte("filled by a one-way stream not yet authenticated\n")); err != nil {
			return fmt.Errorf("kvtool/transfer: %w", err)
		}
		rv.marked = true
	}
	return rv.loop(ctx)
}
