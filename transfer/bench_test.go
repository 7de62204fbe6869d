package transfer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/sharedtmp"
	"github.com/kvtool/kvtool/internal/xfertest"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/vfs"
)

// The Speed benchmarks of issue 5. The state is KVTOOL_BENCH_KEYS keys
// (default 1,000,000) of 16-byte keys and 100-byte random values, written
// once per run as a checkpoint in KVTOOL_BENCH_DIR (default a temporary
// directory). Run briefly on a shared machine:
//
//	go test ./transfer -run XXX -bench . -benchtime 3x
//	KVTOOL_BENCH_KEYS=200000 go test ./transfer -run XXX -bench Snapshot -benchtime 2x

func benchKeys() int {
	if n, err := strconv.Atoi(os.Getenv("KVTOOL_BENCH_KEYS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

var benchCkpt struct {
	once sync.Once
	path string
	info checkpoint.Info
	err  error
}

// benchCheckpoint writes (once) the benchmark's checkpoint file.
func benchCheckpoint(b *testing.B) (string, checkpoint.Info) {
	benchCkpt.once.Do(func() {
		dir := os.Getenv("KVTOOL_BENCH_DIR")
		if dir == "" {
			dir, benchCkpt.err = sharedtmp.Dir("kvtool-xfer-bench")
		}
		n := benchKeys()
		benchCkpt.path = filepath.Join(dir, fmt.Sprintf("bench-%d.ckpt", n))
		if info, err := checkpoint.ReadInfo(vfs.Default, benchCkpt.path); err == nil && info.Keys == uint64(n) {
			benchCkpt.info = info
			return
		}
		meta := checkpoint.Meta{StoreID: manifest.NewStoreID(), Index: uint64(n), Term: 1, Shards: 16}
		benchCkpt.info, benchCkpt.err = checkpoint.WriteFile(vfs.Default, benchCkpt.path, meta, benchState(n), checkpoint.Options{})
	})
	if benchCkpt.err != nil {
		b.Fatal(benchCkpt.err)
	}
	return benchCkpt.path, benchCkpt.info
}

// benchState yields n 16-byte keys with 100-byte random values, in order.
func benchState(n int) checkpoint.Source {
	return checkpoint.SourceFunc(func(fn func(string, []byte) bool) {
		r := rand.New(rand.NewPCG(1, 2))
		buf := make([]byte, 104)
		for i := 0; i < n; i++ {
			for j := 0; j < len(buf); j += 8 {
				binary.LittleEndian.PutUint64(buf[j:], r.Uint64())
			}
			if !fn(fmt.Sprintf("key:%012d", i), buf[:100]) {
				return
			}
		}
	})
}

// fileSource ships one checkpoint file with no tail.
type fileSource struct {
	path string
	info checkpoint.Info
}

func (s *fileSource) Identity() Identity {
	return Identity{StoreID: s.info.Meta.StoreID, Epoch: 1, Term: 1, SegmentSize: 64 << 20}
}
func (s *fileSource) LastIndex() uint64 { return s.info.Meta.Index }
func (s *fileSource) Pin(context.Context, PinRequest) (Snapshot, error) {
	f, err := vfs.Default.Open(s.path)
	if err != nil {
		return nil, err
	}
	id := format.XferSnapshotID{Index: s.info.Meta.Index, Term: s.info.Meta.Term, Checksum: s.info.Checksum}
	return &fileSnap{id: id, size: s.info.Size, f: f}, nil
}
func (s *fileSource) PinLog(context.Context, string, uint64) (Snapshot, error) {
	return nil, ErrTooFarBehind
}
func (s *fileSource) Tail(context.Context, uint64) (Tail, error) { return dirTail{}, nil }

// BenchmarkSnapshotTransfer ships the checkpoint over loopback TCP into a
// data directory on disk (chunks written, fsync'd and recorded, then the
// whole snapshot verified and installed), beside a plain TCP copy of the
// same file into a file with one fsync, and into nothing. MB/s is of the
// checkpoint's bytes; "wire-MB/s" counts every byte the sender wrote, and
// "stream-MB/s" stops the clock when the last chunk is durable at the
// receiver (before the cutover's verification).
func BenchmarkSnapshotTransfer(b *testing.B) {
	path, info := benchCheckpoint(b)
	b.Run("transfer", func(b *testing.B) {
		src := &fileSource{path: path, info: info}
		b.SetBytes(info.Size)
		var wire int64
		var streamed time.Duration
		for i := 0; i < b.N; i++ {
			dir := b.TempDir()
			start := time.Now()
			var lastChunk time.Time
			ropts := ReceiveOptions{Dir: dir, Progress: func(p Progress) {
				if p.Phase == PhaseCutover {
					lastChunk = time.Now()
				}
			}}
			o := transferOnce(b, src, SendOptions{}, ropts, nil, nil)
			if o.sendErr != nil || o.recvErr != nil {
				b.Fatalf("send %v, receive %v", o.sendErr, o.recvErr)
			}
			wire += o.send.WireBytes
			streamed += lastChunk.Sub(start)
		}
		b.ReportMetric(float64(wire)/1e6/b.Elapsed().Seconds(), "wire-MB/s")

		b.ReportMetric(float64(info.Size)*float64(b.N)/1e6/streamed.Seconds(), "stream-MB/s")
	})
	b.Run("tcp-copy-to-file", func(b *testing.B) {
		b.SetBytes(info.Size)
		for i := 0; i < b.N; i++ {
			plainCopy(b, path, filepath.Join(b.TempDir(), "copy"))
		}
	})
	b.Run("tcp-copy-discard", func(b *testing.B) {
		b.SetBytes(info.Size)
		for i := 0; i < b.N; i++ {
			plainCopy(b, path, "")
		}
	})
}

// plainCopy sends the file at path over loopback TCP (io.Copy: sendfile)
// into dst with one fsync at the end, or into nothing if dst is "".
func plainCopy(b *testing.B, path, dst string) {
	a, c := tcpPair(b)
	errc := make(chan error, 1)
	go func() {
		f, err := os.Open(path)
		if err == nil {
			_, err = io.Copy(a, f)
			f.Close()
		}
		a.Close()
		errc <- err
	}()
	var w io.Writer = io.Discard
	var out *os.File
	if dst != "" {
		var err error
		if out, err = os.Create(dst); err != nil {
			b.Fatal(err)
		}
		w = out
	}
	if _, err := io.Copy(w, c.(*net.TCPConn)); err != nil {
		b.Fatal(err)
	}
	if out != nil {
		if err := out.Sync(); err != nil {
			b.Fatal(err)
		}
		out.Close()
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkResume cuts a transfer halfway and resumes it, reporting the
// chunk bytes sent again beside the snapshot's size.
func BenchmarkResume(b *testing.B) {
	path, info := benchCheckpoint(b)
	src := &fileSource{path: path, info: info}
	var resent, window int64
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		ropts := ReceiveOptions{Dir: dir}
		first := transferOnce(b, src, SendOptions{}, ropts, nil, cutAfter(info.Size/2))
		if !errors.Is(first.recvErr, ErrPeerGone) {
			b.Fatalf("first session: %v", first.recvErr)
		}
		second := transferOnce(b, src, SendOptions{}, ropts, nil, nil)
		if second.recvErr != nil || !second.recv.Resumed {
			b.Fatalf("resume: %+v %v", second.recv, second.recvErr)
		}
		resent += first.send.ChunkBytes + second.send.ChunkBytes - info.Size
		window = DefaultWindow
	}
	b.ReportMetric(float64(info.Size), "snapshot-bytes")
	b.ReportMetric(float64(resent)/float64(b.N), "resent-bytes/op")
	b.ReportMetric(float64(window), "window-bytes")
}

// BenchmarkFollow measures how fast a read replica (serve --join) applies
// its source's log after cutover (1000 entries per op): entries/s through
// Store.EnqueueEntry, whose entries share fsyncs.
func BenchmarkFollow(b *testing.B) {
	src := newMemSource(b, 100, 1)
	dir := b.TempDir()
	op := &replicaOpener{xfertest.Replicas{Dir: dir}}
	stop := follow(b, src, dir, op)
	waitFor(b, "cutover", func() bool { return op.store() != nil })
	const perOp = 1000
	b.ResetTimer()
	for i := 0; i < b.N*perOp; i++ {
		src.append(fmt.Sprintf("k%d", i%1000), []byte("value"))
	}
	last := src.LastIndex()
	waitFor(b, "the replica", func() bool { return op.store().Snapshot().Index() >= last })
	b.StopTimer()
	stop()
	op.store().Close()
	b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "entries/s")
}
