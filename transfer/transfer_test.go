package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/vfs"
)

// small chunks and a small window make many chunks and many credits out
// of a small state, so the tests stay fast.
const (
	testChunk  = format.MinXferChunk
	testWindow = 4 * testChunk
)

func smallOpts(dir string) (SendOptions, ReceiveOptions) {
	return SendOptions{ChunkSize: testChunk, Peer: "receiver", RetainEvery: 20 * time.Millisecond},
		ReceiveOptions{Dir: dir, Window: testWindow, Peer: "sender"}
}

func TestSendReceive(t *testing.T) {
	src := newMemSource(t, 2000, 100)
	src.append("after", []byte("the snapshot"))
	dir := filepath.Join(t.TempDir(), "data")
	sopts, ropts := smallOpts(dir)
	var phases []string
	ropts.Progress = func(p Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v\nreceive: %v", o.sendErr, o.recvErr)
	}
	if !o.recv.CutOver || o.recv.Resumed || o.recv.Chunks < 10 {
		t.Fatalf("receive result %+v", o.recv)
	}
	if o.send.ChunkBytes != o.send.Size || o.send.Applied != o.recv.Applied || o.send.Snapshot != o.recv.Snapshot {
		t.Fatalf("send %+v\nreceive %+v", o.send, o.recv)
	}
	if got := checkInstalled(t, vfs.Default, dir, src); got != src.LastIndex() {
		t.Fatalf("installed at index %d, want %d", got, src.LastIndex())
	}
	if want := []string{PhaseSnapshot, PhaseCutover, PhaseDone}; fmt.Sprint(phases) != fmt.Sprint(want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	if names, _ := vfs.Default.List(filepath.Join(dir, format.TransferDir)); len(names) != 0 {
		t.Errorf("the transfer area still holds %v after cutover", names)
	}
	if src.pins.Load() != src.released.Load() {
		t.Errorf("%d pins, %d released", src.pins.Load(), src.released.Load())
	}
}

// TestTailDuringTransfer appends to the source's log while chunks flow: the
// receiver cuts over at the sender's target with every entry up to it.
func TestTailDuringTransfer(t *testing.T) {
	src := newMemSource(t, 3000, 10)
	if _, err := src.snapshot(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			src.append(fmt.Sprintf("live:%d", i%50), []byte(fmt.Sprint(i)))
			time.Sleep(50 * time.Microsecond)
		}
	}()
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	sopts.MaxRate = 2 << 20 // slow enough for the tail to grow meanwhile
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	close(stop)
	<-done
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v\nreceive: %v", o.sendErr, o.recvErr)
	}
	if o.send.Entries == 0 || o.recv.Applied != o.send.TailEnd || o.send.TailEnd <= o.send.Snapshot.Index {
		t.Fatalf("no tail streamed: send %+v receive %+v", o.send, o.recv)
	}
	if got := checkInstalled(t, vfs.Default, dir, src); got != o.send.TailEnd {
		t.Fatalf("installed at %d, the tail ended at %d", got, o.send.TailEnd)
	}
}

// TestResumeRandomInterruptions interrupts a transfer at random points,
// alternately cutting the connection and killing the receiver (its context
// cancelled, restarted from disk), while the source's log grows. The last
// session completes, and the chunk bytes sent in all sessions are at most
// the snapshot plus one credit window per interruption.
func TestResumeRandomInterruptions(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { randomInterruptions(t, seed) })
	}
}

func randomInterruptions(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	src := newMemSource(t, 3000, 5)
	id, err := src.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(src.snaps[id]))
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	var sent, tail int64
	cuts := 0
	for ; ; cuts++ {
		if cuts > 30 {
			t.Fatal("never finished")
		}
		for i := 0; i < 20; i++ {
			src.append(fmt.Sprintf("live:%d", r.IntN(100)), []byte(fmt.Sprint(cuts, i)))
		}
		at := 1 + r.Int64N(size/3)
		var o outcome
		if cuts%2 == 0 {
			o = transferOnce(t, src, sopts, ropts, nil, cutAfter(at))
		} else {
			o = killReceiverAfter(t, src, sopts, ropts, at)
		}
		sent += o.send.ChunkBytes
		tail += o.send.TailBytes
		if o.recvErr == nil {
			break
		}
		if !errors.Is(o.recvErr, ErrPeerGone) && !errors.Is(o.recvErr, context.Canceled) {
			t.Fatalf("interruption %d at %d: receive: %v", cuts, at, o.recvErr)
		}
	}
	if limit := size + int64(cuts)*testWindow; sent > limit {
		t.Fatalf("sent %d chunk bytes over %d interruptions; the snapshot is %d, the bound %d", sent, cuts, size, limit)
	}
	if got := checkInstalled(t, vfs.Default, dir, src); got != src.LastIndex() {
		t.Fatalf("installed at %d, want %d", got, src.LastIndex())
	}
	t.Logf("snapshot %d bytes, %d interruptions, %d chunk bytes sent (%d again), %d tail bytes", size, cuts, sent, sent-size, tail)
}

// killReceiverAfter runs a session whose receiver is killed (its context
// cancelled) once it has read n bytes.
func killReceiverAfter(t *testing.T, src Source, sopts SendOptions, ropts ReceiveOptions, n int64) outcome {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := tcpPair(t)
	sopts.Secret, ropts.Secret = testSecret, testSecret
	var o outcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.send, o.sendErr = Send(context.Background(), a, src, sopts)
		a.Close()
	}()
	o.recv, o.recvErr = Receive(ctx, &cancelConn{Conn: b, after: n, cancel: cancel}, ropts)
	b.Close()
	<-done
	return o
}

// TestResumeAfterReceiverKilled cancels the receiver halfway through (as a
// killed process) and starts a new one on the same directory.
func TestResumeAfterReceiverKilled(t *testing.T) {
	src := newMemSource(t, 3000, 5)
	id, err := src.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := tcpPair(t)
	sopts.Secret, ropts.Secret = testSecret, testSecret
	go Send(context.Background(), a, src, sopts)
	_, err = Receive(ctx, &cancelConn{Conn: b, after: int64(len(src.snaps[id]) / 2), cancel: cancel}, ropts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("receive: %v", err)
	}
	a.Close()
	b.Close()
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if o.recvErr != nil || !o.recv.Resumed || o.recv.ResumeFrom == 0 {
		t.Fatalf("resume: %+v, %v", o.recv, o.recvErr)
	}
	checkInstalled(t, vfs.Default, dir, src)
}

// cancelConn cancels a context once it has read after bytes.
type cancelConn struct {
	net.Conn
	read   int64
	after  int64
	cancel func()
}

func (c *cancelConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.read += int64(n); c.read > c.after {
		c.cancel()
	}
	return n, err
}

// TestCorruptChunkResent damages a chunk's data in transit: the receiver
// asks for it again and the transfer completes.
func TestCorruptChunkResent(t *testing.T) {
	src := newMemSource(t, 1000, 1)
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	// Offset 20000 of the sender's stream is inside a chunk's data: the
	// handshake and session take a few hundred bytes, and each chunk frame
	// is 56 bytes of header for 4 KiB of data.
	o := transferOnce(t, src, sopts, ropts, nil, flipAt(20000))
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v\nreceive: %v", o.sendErr, o.recvErr)
	}
	if o.recv.Nacks != 1 || o.send.ResentBytes != testChunk {
		t.Fatalf("nacks %d, resent %d bytes", o.recv.Nacks, o.send.ResentBytes)
	}
	checkInstalled(t, vfs.Default, dir, src)
}

// TestCorruptFrameEndsSession damages a frame header: the stream cannot be
// trusted past it, so the session ends with corruption, and the next one
// resumes.
func TestCorruptFrameEndsSession(t *testing.T) {
	src := newMemSource(t, 1000, 1)
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	// Inside chunk 2's frame header: after the stream header, the hello,
	// the session and two chunks, each frame after the hello followed by
	// its tag.
	hdr := int64(format.XferStreamHeaderSize) + 16 + 72 + 16 + 168 + tagSize + 2*(56+testChunk+tagSize) + 3
	o := transferOnce(t, src, sopts, ropts, nil, flipAt(hdr))
	if format.AsCorruption(o.recvErr) == nil || !errors.Is(o.sendErr, format.ErrCorruption) {
		t.Fatalf("receive: %v\nsend: %v", o.recvErr, o.sendErr)
	}
	o = transferOnce(t, src, sopts, ropts, nil, nil)
	if o.recvErr != nil || !o.recv.Resumed {
		t.Fatalf("%+v %v", o.recv, o.recvErr)
	}
	checkInstalled(t, vfs.Default, dir, src)
}

func TestWrongSecret(t *testing.T) {
	src := newMemSource(t, 100, 1)
	dir := filepath.Join(t.TempDir(), "data")
	sopts, ropts := smallOpts(dir)
	sopts.Secret = mustSecret("another secret, also long enough")
	before := dirtest.Snapshot(t, filepath.Dir(dir))
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if !errors.Is(o.recvErr, ErrAuth) || !errors.Is(o.sendErr, ErrAuth) {
		t.Fatalf("receive: %v\nsend: %v", o.recvErr, o.sendErr)
	}
	if after := dirtest.Snapshot(t, filepath.Dir(dir)); !maps.Equal(before, after) {
		t.Fatalf("a rejected sender changed the directory: %v -> %v", before, after)
	}
	if src.pins.Load() != 0 {
		t.Fatalf("the sender pinned a snapshot for an unauthenticated receiver")
	}
	if s := fmt.Sprintf("%v %+v %#v", sopts.Secret, sopts, sopts.Secret); bytes.Contains([]byte(s), []byte("another secret")) {
		t.Fatalf("the secret formats as %q", s)
	}
}

// partialDir leaves a partial snapshot of src in a new directory.
func partialDir(t *testing.T, src *memSource) string {
	t.Helper()
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	o := transferOnce(t, src, sopts, ropts, nil, cutAfter(30000))
	if !errors.Is(o.recvErr, ErrPeerGone) {
		t.Fatalf("receive: %v", o.recvErr)
	}
	return dir
}

func TestRejectOtherStore(t *testing.T) {
	src := newMemSource(t, 3000, 1)
	dir := partialDir(t, src)
	other := newMemSource(t, 3000, 1)
	before := dirtest.Snapshot(t, dir)
	sopts, ropts := smallOpts(dir)
	o := transferOnce(t, other, sopts, ropts, nil, nil)
	if !errors.Is(o.recvErr, ErrStoreMismatch) && !errors.Is(o.sendErr, ErrStoreMismatch) {
		t.Fatalf("receive: %v\nsend: %v", o.recvErr, o.sendErr)
	}
	if after := dirtest.Snapshot(t, dir); !maps.Equal(before, after) {
		t.Fatalf("a stream from another store changed the directory")
	}
}

func TestRejectStaleEpoch(t *testing.T) {
	src := newMemSource(t, 3000, 1)
	src.id.Epoch = 5
	dir := partialDir(t, src)
	src.id.Epoch = 4
	before := dirtest.Snapshot(t, dir)
	sopts, ropts := smallOpts(dir)
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if !errors.Is(o.recvErr, ErrStaleEpoch) || !errors.Is(o.sendErr, ErrStaleEpoch) {
		t.Fatalf("receive: %v\nsend: %v", o.recvErr, o.sendErr)
	}
	if after := dirtest.Snapshot(t, dir); !maps.Equal(before, after) {
		t.Fatalf("a stale stream changed the directory")
	}
}

// TestSnapshotGone resumes against a source that no longer has the partial
// snapshot: the receiver is told, drops it, and takes the new one.
func TestSnapshotGone(t *testing.T) {
	src := newMemSource(t, 3000, 1)
	dir := partialDir(t, src)
	src.append("k", []byte("v"))
	src.mu.Lock()
	src.dropped = true
	src.snaps = map[format.XferSnapshotID][]byte{}
	src.mu.Unlock()
	sopts, ropts := smallOpts(dir)
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if o.recvErr != nil || !o.recv.Restarted || !o.send.Restarted || o.recv.Resumed {
		t.Fatalf("%+v %v", o.recv, o.recvErr)
	}
	if got := checkInstalled(t, vfs.Default, dir, src); got != src.LastIndex() {
		t.Fatalf("installed at %d", got)
	}
}

// TestRefuseStrayWAL refuses a directory with WAL segments but no
// manifest and no transfer: they are somebody's data.
func TestRefuseStrayWAL(t *testing.T) {
	dir := t.TempDir()
	if err := vfs.Default.MkdirAll(filepath.Join(dir, format.WALDir), 0o755); err != nil {
		t.Fatal(err)
	}
	f, _ := vfs.Default.Create(filepath.Join(dir, format.WALDir, format.SegmentName(1)))
	f.Close()
	sopts, ropts := smallOpts(dir)
	o := transferOnce(t, newMemSource(t, 10, 1), sopts, ropts, nil, nil)
	if o.recvErr == nil || !bytes.Contains([]byte(o.recvErr.Error()), []byte("refusing")) {
		t.Fatalf("receive: %v", o.recvErr)
	}
}

// TestReceiveIntoStoreNeedsOpen refuses a directory that holds a store
// when there is no way to catch it up.
func TestReceiveIntoStoreNeedsOpen(t *testing.T) {
	src := newMemSource(t, 100, 1)
	dir := t.TempDir()
	sopts, ropts := smallOpts(dir)
	if o := transferOnce(t, src, sopts, ropts, nil, nil); o.recvErr != nil {
		t.Fatal(o.recvErr)
	}
	o := transferOnce(t, src, sopts, ropts, nil, nil)
	if !errors.Is(o.recvErr, ErrNotEmpty) {
		t.Fatalf("receive: %v", o.recvErr)
	}
	if _, err := manifest.Load(vfs.Default, dir); err != nil {
		t.Fatal(err)
	}
}

// TestContextEndsSend checks that cancelling the sender's context ends a
// Send blocked on a receiver that stopped reading.
func TestContextEndsSend(t *testing.T) {
	src := newMemSource(t, 100, 1)
	a, b := tcpPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Send(ctx, a, src, SendOptions{Secret: testSecret})
		errc <- err
	}()
	// The receiver's hello never comes: Send waits in its handshake.
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("send: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Send did not return after its context was cancelled")
	}
	_ = b
	var _ net.Conn = a
}

func TestLocalStatus(t *testing.T) {
	src := newMemSource(t, 3000, 1)
	dir := partialDir(t, src)
	before := dirtest.Snapshot(t, dir)
	st, err := ReadLocalStatus(vfs.Default, dir)
	if err != nil || !st.Receiving || st.Complete || st.ChunksDone == 0 || st.ChunksDone >= st.Chunks || st.BytesDone == 0 {
		t.Fatalf("%+v %v", st, err)
	}
	if !maps.Equal(before, dirtest.Snapshot(t, dir)) {
		t.Fatal("status changed the directory")
	}
	sopts, ropts := smallOpts(dir)
	if o := transferOnce(t, src, sopts, ropts, nil, nil); o.recvErr != nil {
		t.Fatal(o.recvErr)
	}
	if st, err = ReadLocalStatus(vfs.Default, dir); err != nil || !st.Complete || st.Receiving {
		t.Fatalf("%+v %v", st, err)
	}
}
