package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvtool/kvtool/format"
)

// expect reads the next frame and wants it to be of type want; an error
// frame from the peer becomes its *PeerError.
func expect(r *frameReader, want format.FrameType, peer string) (format.FrameType, int64, []byte, error) {
	t, off, p, err := r.next()
	switch {
	case err != nil:
		return t, off, p, err
	case t == format.FrameXferError:
		return t, off, p, peerError(peer, off, p)
	case t != want:
		return t, off, p, protocolf(peer, "frame type %d at offset %d, want type %d", t, off, want)
	}
	return t, off, p, nil
}

// peerError decodes an error frame into the *PeerError it carries.
func peerError(peer string, off int64, payload []byte) error {
	e, err := format.DecodeXferError(payload, peer, off)
	if err != nil {
		return err
	}
	return &PeerError{Peer: peer, Code: e.Code, Message: e.Message}
}

// isPeerSide reports whether err came from the peer or the connection, so
// there is nobody to tell about it.
func isPeerSide(err error) bool {
	var pe *PeerError
	return errors.As(err, &pe) || errors.Is(err, ErrPeerGone)
}

// sendError tells the peer why this side gives up (best effort).
func sendError(w *frameWriter, err error) {
	e := format.XferError{Code: errorCode(err), Message: err.Error()}
	w.frame(format.FrameXferError, func(b []byte) []byte { return format.AppendXferError(b, e) })
	w.flush()
}

// deadliner is a connection whose blocked calls a deadline ends (net.Conn).
type deadliner interface {
	SetDeadline(t time.Time) error
}

// watch makes reads and writes blocked on conn return once ctx is done,
// when conn supports deadlines. The returned function undoes it.
func watch(ctx context.Context, conn any) func() {
	d, ok := conn.(deadliner)
	if !ok {
		return func() {}
	}
	stop := context.AfterFunc(ctx, func() { d.SetDeadline(time.Unix(1, 0)) })
	return func() {
		if !stop() {
			d.SetDeadline(time.Time{})
		}
	}
}

// contextErr returns err, marked as the context's error if ctx is done (an
// error then is usually the deadline watch set).
func contextErr(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("%w (%v)", ctx.Err(), err)
}
