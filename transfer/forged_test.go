package transfer

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/xfertest"
	"github.com/kvtool/kvtool/store"
)

// forgedTail returns a one-way stream made of a genuine stream's signed
// header and session frame followed by tail frames that nobody holding the
// secret wrote (anyone can replay the first and write the second).
func forgedTail(t *testing.T, stream []byte) []byte {
	t.Helper()
	cut := format.XferStreamHeaderSize + format.FrameHeaderSize + 168
	sess, err := format.DecodeXferSession(stream[cut-168:cut], "x", 0)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Write(stream[:cut])
	fw := newFrameWriter(&buf, "x", false)
	for i := uint64(1); i <= 3; i++ {
		data := format.AppendTxnRecord(nil, []format.TxnEffect{{Kind: format.TxnPut, Key: "legit", Value: []byte("EVIL")}})
		fw.frame(format.FrameXferTail, func(b []byte) []byte {
			return format.AppendXferTail(b, format.XferTail{Index: sess.Snapshot.Index + i, Term: sess.Term, Type: format.FrameWALTxn, Data: data})
		})
	}
	fw.flush()
	return buf.Bytes()
}

// checkNotPoisoned opens the installed store and checks it holds the
// source's state, not the forged entries.
func checkNotPoisoned(t *testing.T, dir string, src *memSource) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, _ := st.Snapshot().Get("legit"); string(v) != "1" || st.Snapshot().Index() != src.LastIndex() {
		t.Fatalf("installed store has legit=%q at index %d; the source has \"1\" at %d: forged entries were installed",
			v, st.Snapshot().Index(), src.LastIndex())
	}
}

// TestForgedOneWayTailNotInstalled: tail entries of a one-way stream that
// fails its MAC are never kept, so a later genuine one-way stream installs
// the source's state. (Found in review: they were spilled into the WAL and
// a later session resumed from them.)
func TestForgedOneWayTailNotInstalled(t *testing.T) {
	src := newMemSource(t, 300, 5)
	if _, err := src.snapshot(); err != nil {
		t.Fatal(err)
	}
	src.append("legit", []byte("1"))
	stream := oneWayStream(t, src)
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := ReadStream(context.Background(), bytes.NewReader(forgedTail(t, stream)), ReceiveOptions{Dir: dir, Secret: testSecret}); err == nil {
		t.Fatal("a forged stream was accepted")
	}
	if _, err := ReadStream(context.Background(), bytes.NewReader(stream), ReceiveOptions{Dir: dir, Secret: testSecret}); err != nil {
		t.Fatal(err)
	}
	checkNotPoisoned(t, dir, src)
}

// TestChunkAfterCutoverIsAnError: a chunk frame after cutover (follow
// mode) is a protocol error, not a nil dereference. (Found in review.)
func TestChunkAfterCutoverIsAnError(t *testing.T) {
	src := newMemSource(t, 300, 5)
	if _, err := src.snapshot(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	a, b := tcpPair(t)
	op := &replicaOpener{xfertest.Replicas{Dir: dir}}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("receiver panicked: %v", r)
			}
		}()
		_, err := Receive(context.Background(), b, ReceiveOptions{Dir: dir, Secret: testSecret, Follow: true, Open: op.open})
		done <- err
	}()
	// fake sender
	s := newSender(a, src, SendOptions{Secret: testSecret, ChunkSize: testChunk}, true)
	s.opts.fill()
	req, err := s.handshake()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.open(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	s.writeSession()
	for seq := uint64(0); seq < s.sess.ChunkCount; seq++ {
		if err := s.sendChunk(context.Background(), seq, false); err != nil {
			t.Fatal(err)
		}
	}
	s.target, s.digestNext = s.sess.Snapshot.Index, s.sess.ChunkCount
	s.sendFinal()
	// read until Done
	for {
		f, err := s.r.next()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == format.FrameXferDone {
			break
		}
	}
	s.sendChunk(context.Background(), 0, false)
	s.w.flush()
	err = <-done
	a.Close()
	if err == nil || strings.Contains(err.Error(), "panicked") {
		t.Fatalf("receiver after a chunk past cutover: %v; want a protocol error", err)
	}
}

// TestForgedOneWayThenDuplex: after a forged one-way stream, a duplex
// session installs the source's state (it must not resume from what the
// forged stream wrote).
func TestForgedOneWayThenDuplex(t *testing.T) {
	src := newMemSource(t, 300, 5)
	if _, err := src.snapshot(); err != nil {
		t.Fatal(err)
	}
	src.append("legit", []byte("1"))
	dir := filepath.Join(t.TempDir(), "data")
	ReadStream(context.Background(), bytes.NewReader(forgedTail(t, oneWayStream(t, src))), ReceiveOptions{Dir: dir, Secret: testSecret})
	sopts, ropts := smallOpts(dir)
	if o := transferOnce(t, src, sopts, ropts, nil, nil); o.recvErr != nil || o.sendErr != nil {
		t.Fatalf("duplex transfer: recv %v, send %v", o.recvErr, o.sendErr)
	}
	checkNotPoisoned(t, dir, src)
}
