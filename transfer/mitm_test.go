package transfer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/vfs"
)

// mitmConn is a man in the middle on what a connection reads: it parses
// the stream frame by frame (knowing the duplex layout: header, hello,
// then frames each followed by its tag, a chunk's data before its tag),
// lets edit change one frame (and a chunk's data), recomputes the frame's
// checksum and the chunk's xxh64 as an attacker would, and passes the rest
// through.
type mitmConn struct {
	net.Conn
	pr     *io.PipeReader
	edit   func(t format.FrameType, payload, data []byte) bool // true: changed
	edited atomic.Int64
}

func newMITM(edit func(t format.FrameType, payload, data []byte) bool) func(net.Conn) net.Conn {
	return func(c net.Conn) net.Conn {
		pr, pw := io.Pipe()
		m := &mitmConn{Conn: c, pr: pr, edit: edit}
		go func() { pw.CloseWithError(m.relay(pw)) }()
		return m
	}
}

func (m *mitmConn) Read(p []byte) (int, error) { return m.pr.Read(p) }

func (m *mitmConn) Close() error {
	m.pr.Close()
	return m.Conn.Close()
}

func (m *mitmConn) relay(w io.Writer) error {
	hdr := make([]byte, format.XferStreamHeaderSize)
	if err := m.copyN(w, hdr); err != nil {
		return err
	}
	for n := 0; ; n++ {
		frame := make([]byte, format.FrameHeaderSize)
		if _, err := io.ReadFull(m.Conn, frame); err != nil {
			return err
		}
		size := binary.LittleEndian.Uint32(frame[8:])
		frame = append(frame, make([]byte, size)...)
		if _, err := io.ReadFull(m.Conn, frame[format.FrameHeaderSize:]); err != nil {
			return err
		}
		t := format.FrameType(frame[12])
		var data []byte
		if t == format.FrameXferChunk {
			c, err := format.DecodeXferChunk(frame[format.FrameHeaderSize:], "mitm", 0)
			if err != nil {
				return err
			}
			data = make([]byte, c.WireLen)
			if _, err := io.ReadFull(m.Conn, data); err != nil {
				return err
			}
		}
		if n > 0 && m.edit(t, frame[format.FrameHeaderSize:], data) {
			m.edited.Add(1)
			if t == format.FrameXferChunk { // the chunk's checksum, then the frame's
				binary.LittleEndian.PutUint64(frame[format.FrameHeaderSize+24:], xxh(data))
			}
			format.FinishFrame(frame, 0)
		}
		tag := make([]byte, 0)
		if n > 0 {
			tag = make([]byte, tagSize)
			if _, err := io.ReadFull(m.Conn, tag); err != nil {
				return err
			}
		}
		for _, b := range [][]byte{frame, data, tag} {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
	}
}

func (m *mitmConn) copyN(w io.Writer, b []byte) error {
	if _, err := io.ReadFull(m.Conn, b); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// once returns an edit that applies f to the first frame of type t it
// accepts, and to nothing after.
func once(t format.FrameType, f func(payload, data []byte) bool) func(format.FrameType, []byte, []byte) bool {
	var done bool
	return func(ft format.FrameType, payload, data []byte) bool {
		if done || ft != t || !f(payload, data) {
			return false
		}
		done = true
		return true
	}
}

// checkTamperRefused checks a session whose stream was altered ended in
// ErrAuth before cutover, and that a clean session then completes with
// the source's state.
func checkTamperRefused(t *testing.T, src *memSource, dir string, o outcome, edited int64) {
	t.Helper()
	if edited != 1 {
		t.Fatalf("the man in the middle changed %d frames, want 1", edited)
	}
	if !errors.Is(o.recvErr, ErrAuth) && !errors.Is(o.sendErr, ErrAuth) {
		t.Fatalf("an altered stream was not refused as unauthentic:\nreceive: %v\nsend: %v", o.recvErr, o.sendErr)
	}
	if o.recv.CutOver {
		t.Fatal("the receiver cut over to an altered stream")
	}
	if _, err := manifest.Load(vfs.Default, dir); err == nil {
		t.Fatal("the receiver published a manifest for an altered stream")
	}
	t.Logf("refused: receive: %v; send: %v", o.recvErr, o.sendErr)
	sopts, ropts := smallOpts(dir)
	if o := transferOnce(t, src, sopts, ropts, nil, nil); o.recvErr != nil || o.sendErr != nil {
		t.Fatalf("clean session after the altered one:\nreceive: %v\nsend: %v", o.recvErr, o.sendErr)
	}
	if got := checkInstalled(t, vfs.Default, dir, src); got != src.LastIndex() {
		t.Fatalf("installed at %d, want %d", got, src.LastIndex())
	}
}

// TestMITMAlteredTail: a man in the middle changes a value in a tail
// entry and fixes the frame checksum. The receiver refuses the stream
// before cutover; a clean session installs the source's state.
func TestMITMAlteredTail(t *testing.T) {
	src := newMemSource(t, 300, 1)
	if _, err := src.snapshot(); err != nil {
		t.Fatal(err)
	}
	src.append("target", []byte("the value the source logged"))
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	var m *mitmConn
	edit := once(format.FrameXferTail, func(p, _ []byte) bool {
		i := bytes.Index(p, []byte("the value the source"))
		if i < 0 {
			return false
		}
		copy(p[i:], "THE VALUE AN ATTACKER")
		return true
	})
	o := transferOnce(t, src, sopts, ropts, nil, func(c net.Conn) net.Conn { m = newMITM(edit)(c).(*mitmConn); return m })
	checkTamperRefused(t, src, dir, o, m.edited.Load())
}

// TestMITMAlteredChunk: a man in the middle changes a byte of a chunk and
// recomputes the chunk's xxh64 and the frame checksum. The chunk is never
// recorded as received: the session is refused, and the next one resumes
// and installs the source's state.
func TestMITMAlteredChunk(t *testing.T) {
	src := newMemSource(t, 1000, 1)
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	var m *mitmConn
	edit := once(format.FrameXferChunk, func(p, data []byte) bool {
		if binary.LittleEndian.Uint64(p) != 2 { // chunk 2
			return false
		}
		data[100] ^= 0x40
		return true
	})
	o := transferOnce(t, src, sopts, ropts, nil, func(c net.Conn) net.Conn { m = newMITM(edit)(c).(*mitmConn); return m })
	checkTamperRefused(t, src, dir, o, m.edited.Load())
}

// TestMITMAlteredCredit: a man in the middle changes a credit the
// receiver sends (moving its limit far ahead); the sender refuses it.
func TestMITMAlteredCredit(t *testing.T) {
	src := newMemSource(t, 1000, 1)
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	var m *mitmConn
	edit := once(format.FrameXferCredit, func(p, _ []byte) bool {
		binary.LittleEndian.PutUint64(p[8:], 1<<40)
		return true
	})
	o := transferOnce(t, src, sopts, ropts, func(c net.Conn) net.Conn { m = newMITM(edit)(c).(*mitmConn); return m }, nil)
	if !errors.Is(o.sendErr, ErrAuth) {
		t.Fatalf("send: %v\nreceive: %v", o.sendErr, o.recvErr)
	}
	checkTamperRefused(t, src, dir, o, m.edited.Load())
}
