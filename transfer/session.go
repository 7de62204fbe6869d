package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kvtool/kvtool/format"
)

// expect reads the next frame and wants it to be of type want; an error
// frame from the peer becomes its *PeerError.
func expect(r *frameReader, want format.FrameType, peer string) (format.Frame, error) {
	f, err := r.next()
	switch {
	case err != nil:
		return f, err
	case f.Type == format.FrameXferError:
		return f, peerError(peer, f.Offset, f.Payload)
	case f.Type != want:
		return f, protocolf(peer, "frame type %d at offset %d, want type %d", f.Type, f.Offset, want)
	}
	return f, nil
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

// interrupt makes a read or write blocked on conn return: a deadline in
// the past when conn takes one, else closing it (the only way to stop a
// stream without deadlines, such as a pipe). It returns how to undo a
// deadline (nothing to undo after a close), and false when conn can
// neither take a deadline nor be closed: then nothing can stop a read in
// flight but the stream itself.
func interrupt(conn any) (undo func(), ok bool) {
	if d, ok := conn.(deadliner); ok && d.SetDeadline(time.Unix(1, 0)) == nil {
		return func() { d.SetDeadline(time.Time{}) }, true
	}
	if c, ok := conn.(io.Closer); ok {
		c.Close()
		return func() {}, true
	}
	return func() {}, false
}

// limit bounds the calls on conn for d (a handshake): with a deadline, or
// by closing conn once d has passed. The returned function lifts the bound.
func limit(conn any, d time.Duration) func() {
	if dl, ok := conn.(deadliner); ok && dl.SetDeadline(time.Now().Add(d)) == nil {
		return func() { dl.SetDeadline(time.Time{}) }
	}
	if c, ok := conn.(io.Closer); ok {
		t := time.AfterFunc(d, func() { c.Close() })
		return func() { t.Stop() }
	}
	return func() {}
}

// watch makes reads and writes blocked on conn return once ctx is done
// (see interrupt). The returned function undoes it.
func watch(ctx context.Context, conn any) func() {
	var undo func()
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		undo, _ = interrupt(conn)
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired
			undo()
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
