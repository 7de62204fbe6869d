package transfer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"github.com/kvtool/kvtool/internal/xfertest"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// TestSourceAPIReachesReceiver: a sender with an API address names it in
// its hello; the receiver reports it (an unspecified host replaced by the
// host it reached the sender at), in progress and result, and records it
// in the data directory for a replica restarted later.
func TestSourceAPIReachesReceiver(t *testing.T) {
	src := newMemSource(t, 300, 5)
	dir := filepath.Join(t.TempDir(), "data")
	sopts, ropts := smallOpts(dir)
	sopts.APIAddr, ropts.Peer = "0.0.0.0:7070", "10.1.2.3:7071"
	var mu sync.Mutex
	var seen string
	ropts.Progress = func(p Progress) { mu.Lock(); seen = p.SourceAPI; mu.Unlock() }
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v\nreceive: %v", o.sendErr, o.recvErr)
	}
	const want = "10.1.2.3:7070"
	if o.recv.SourceAPI != want || seen != want {
		t.Fatalf("result names %q, progress %q; want %q", o.recv.SourceAPI, seen, want)
	}
	if got, err := ReadSourceAPI(vfs.Default, dir); got != want || err != nil {
		t.Fatalf("recorded %q, %v; want %q", got, err, want)
	}

	// A sender without an API address (or an older one) names none, and
	// the record of an earlier source stays.
	sopts.APIAddr = ""
	src.append("more", []byte("x"))
	op := &replicaOpener{xfertest.Replicas{Dir: dir}}
	ropts.Open = op.open
	o = transferOnce(t, src, sopts, ropts, nil, nil)
	if st := op.store(); st != nil {
		st.Close()
	}
	if o.recvErr != nil || o.recv.SourceAPI != "" || !o.recv.TailOnly {
		t.Fatalf("second session: %+v, %v", o.recv, o.recvErr)
	}
	if got, _ := ReadSourceAPI(vfs.Default, dir); got != want {
		t.Fatalf("the record became %q", got)
	}
}

// TestHelloCompatibleWithOlderReceiver: to a receiver whose hello does
// not ask for the API address (an older kvtool), the sender's hello is
// the 72 bytes with the proof over the nonces alone that older receivers
// check; to one that asks, the extension follows and the proof covers it.
func TestHelloCompatibleWithOlderReceiver(t *testing.T) {
	for _, features := range []uint32{0, format.XferFeatureSenderAPI} {
		a, b := tcpPair(t)
		go Send(context.Background(), a, newMemSource(t, 10, 1), SendOptions{Secret: testSecret, APIAddr: "127.0.0.1:7070"})
		w := newFrameWriter(b, "sender", true)
		nr := newNonce()
		w.header(format.XferReceiver, format.XferDuplex)
		w.frame(format.FrameXferHello, func(p []byte) []byte {
			return format.AppendXferHello(p, format.ReceiverHello(helloVersion, nr, features))
		})
		if err := w.flush(); err != nil {
			t.Fatal(err)
		}
		r := newFrameReader(b, "sender", true)
		if err := r.header(format.XferSender, format.XferDuplex); err != nil {
			t.Fatal(err)
		}
		f, err := expect(r, format.FrameXferHello, "sender")
		if err != nil {
			t.Fatal(err)
		}
		p := f.Payload
		h, err := format.DecodeXferHello(p, "sender", f.Offset)
		if err != nil {
			t.Fatal(err)
		}
		wantAPI, wantLen := "", 72
		if features != 0 {
			wantAPI, wantLen = "127.0.0.1:7070", 72+2+len("127.0.0.1:7070")
		}
		if h.API != wantAPI || len(p) != wantLen || h.Proof != testSecret.senderProof(nr, h.Nonce, format.XferHelloExt(h)) {
			t.Errorf("features %d: hello of %d bytes naming %q, want %d naming %q, with its proof", features, len(p), h.API, wantLen, wantAPI)
		}
		if features == 0 && h.Proof != testSecret.mac(labelSenderProof, nr[:], h.Nonce[:]) {
			t.Errorf("the proof to an older receiver is not the one it checks")
		}
		a.Close()
		b.Close()
	}
}

// TestForgedSourceAPIRefused: an address changed on the way (frame
// checksum recomputed, as an attacker would) fails the sender's proof:
// the receiver records nothing and ends with ErrAuth.
func TestForgedSourceAPIRefused(t *testing.T) {
	src := newMemSource(t, 50, 1)
	dir := filepath.Join(t.TempDir(), "data")
	sopts, ropts := smallOpts(dir)
	sopts.APIAddr = "10.0.0.1:7070"
	o := transferOnce(t, src, sopts, ropts, nil, rewriteHello("10.0.0.1", "10.6.6.6"))
	if !errors.Is(o.recvErr, ErrAuth) {
		t.Fatalf("receive: %v, want ErrAuth", o.recvErr)
	}
	if got, _ := ReadSourceAPI(vfs.Default, dir); got != "" {
		t.Fatalf("recorded %q from a forged hello", got)
	}
}

// rewriteHello replaces old by new (same length) in the hello the
// connection reads, and recomputes the frame's checksum.
func rewriteHello(old, new string) func(net.Conn) net.Conn {
	return func(c net.Conn) net.Conn {
		pr, pw := io.Pipe()
		go func() {
			buf := make([]byte, format.XferStreamHeaderSize+format.FrameHeaderSize)
			if _, err := io.ReadFull(c, buf); err != nil {
				pw.CloseWithError(err)
				return
			}
			frame := buf[format.XferStreamHeaderSize:]
			frame = append(frame, make([]byte, binary.LittleEndian.Uint32(frame[8:]))...)
			if _, err := io.ReadFull(c, frame[format.FrameHeaderSize:]); err != nil {
				pw.CloseWithError(err)
				return
			}
			copy(frame[format.FrameHeaderSize:], bytes.Replace(frame[format.FrameHeaderSize:], []byte(old), []byte(new), 1))
			format.FinishFrame(frame, 0)
			pw.Write(buf[:format.XferStreamHeaderSize])
			pw.Write(frame)
			_, err := io.Copy(pw, c)
			pw.CloseWithError(err)
		}()
		return &pipeConn{Conn: c, r: pr}
	}
}

type pipeConn struct {
	net.Conn
	r *io.PipeReader
}

func (p *pipeConn) Read(b []byte) (int, error) { return p.r.Read(b) }
func (p *pipeConn) Close() error               { p.r.Close(); return p.Conn.Close() }
