package transfer

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kvtool/kvtool/internal/xfertest"
)

// The other end of BenchmarkTransferProcess runs in a process of its own
// (xfertest.RunPeer): peerModeEnv says what it does ("recv": a transfer
// into the data directory peerOutEnv; "copy": copy the connection into the
// file peerOutEnv and fsync it).
const (
	peerModeEnv = "KVTOOL_XFER_BENCH_MODE"
	peerOutEnv  = "KVTOOL_XFER_BENCH_OUT"
)

// TestBenchPeerProcess is the child's entry point; run on its own it skips.
func TestBenchPeerProcess(t *testing.T) {
	c := xfertest.PeerConn(t)
	out := os.Getenv(peerOutEnv)
	switch os.Getenv(peerModeEnv) {
	case "recv":
		// The time from the connection to the cutover (every chunk durable
		// here) goes to out+".stream", for the parent to split the
		// transfer into streaming and verify+install.
		start := time.Now()
		var streamed time.Duration
		ropts := ReceiveOptions{Dir: out, Secret: testSecret, Progress: func(p Progress) {
			if p.Phase == PhaseCutover && streamed == 0 {
				streamed = time.Since(start)
			}
		}}
		if _, err := Receive(context.Background(), c, ropts); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out+".stream", []byte(strconv.FormatInt(int64(streamed), 10)), 0o644); err != nil {
			t.Fatal(err)
		}
	case "copy":
		if err := copyToFile(c, out); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("%s: unknown mode %q", peerModeEnv, os.Getenv(peerModeEnv))
	}
}

// copyToFile is the plain copy a user would pick instead of a transfer:
// the stream into a new file, one fsync at the end.
func copyToFile(r io.Reader, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runPeer runs the child in mode with output out against send
// (xfertest.RunPeer; the child exits once its end is durable: the file
// synced, or the transfer verified and installed).
func runPeer(b *testing.B, mode, out string, send func(net.Conn) error) xfertest.PeerRun {
	return xfertest.RunPeer(b, "TestBenchPeerProcess", []string{peerModeEnv + "=" + mode, peerOutEnv + "=" + out}, send)
}

// BenchmarkTransferProcess measures a whole transfer of the benchmark
// checkpoint (KVTOOL_BENCH_KEYS keys) to a receiver in another process,
// into a data directory on disk, including its verification and install,
// beside a plain TCP copy of the same file (sendfile) into a file with one
// fsync, also received by another process; the two alternate, b.N times
// each, so a loaded machine slows both alike. MB/s are of the checkpoint's
// bytes, medians; xfer/copy is the ratio issue 16 judges (at least 0.80).
// stream-s is the time until every chunk was durable at the receiver, and
// verify+install-s the rest (the cutover and the receiver's exit).
func BenchmarkTransferProcess(b *testing.B) {
	path, info := benchCheckpoint(b)
	src := &fileSource{path: path, info: info}
	mb := float64(info.Size) / 1e6
	var xfer, plain, streamS, cutoverS []float64
	var xferCPU, copyCPU [2][]float64 // ms of CPU per MB: sender, receiver
	for i := 0; i < b.N; i++ {
		out := filepath.Join(b.TempDir(), "data")
		r := runPeer(b, "recv", out, func(c net.Conn) error {
			_, err := Send(context.Background(), c, src, SendOptions{Secret: testSecret})
			return err
		})
		xfer = append(xfer, mb/r.Elapsed.Seconds())
		xferCPU[0] = append(xferCPU[0], msPer(r.SendCPU, mb))
		xferCPU[1] = append(xferCPU[1], msPer(r.PeerCPU, mb))
		st, err := os.ReadFile(out + ".stream")
		if err != nil {
			b.Fatal(err)
		}
		ns, _ := strconv.ParseInt(string(st), 10, 64)
		streamS = append(streamS, time.Duration(ns).Seconds())
		cutoverS = append(cutoverS, r.Elapsed.Seconds()-time.Duration(ns).Seconds())
		r = runPeer(b, "copy", filepath.Join(b.TempDir(), "copy"), func(c net.Conn) error {
			return sendFile(c, path)
		})
		plain = append(plain, mb/r.Elapsed.Seconds())
		copyCPU[0] = append(copyCPU[0], msPer(r.SendCPU, mb))
		copyCPU[1] = append(copyCPU[1], msPer(r.PeerCPU, mb))
	}
	x, p := medianRate(xfer), medianRate(plain)
	b.ReportMetric(x, "xfer-MB/s")
	b.ReportMetric(p, "copy-MB/s")
	b.ReportMetric(x/p, "xfer/copy")
	b.ReportMetric(medianRate(streamS), "stream-s")
	b.ReportMetric(medianRate(cutoverS), "verify+install-s")
	// CPU per MB of each end (the receiver's a process of its own, the
	// sender's this process during the send), less sensitive to a loaded
	// machine than the rates.
	b.ReportMetric(medianRate(xferCPU[0]), "xfer-send-cpu-ms/MB")
	b.ReportMetric(medianRate(xferCPU[1]), "xfer-recv-cpu-ms/MB")
	b.ReportMetric(medianRate(copyCPU[0]), "copy-send-cpu-ms/MB")
	b.ReportMetric(medianRate(copyCPU[1]), "copy-recv-cpu-ms/MB")
	b.ReportMetric(0, "ns/op")
}

// msPer is d in milliseconds per unit.
func msPer(d time.Duration, units float64) float64 {
	return float64(d) / 1e6 / units
}

// sendFile writes the file at path to c (io.Copy: sendfile).
func sendFile(c net.Conn, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(c, f); err != nil {
		return fmt.Errorf("send %s: %w", path, err)
	}
	return nil
}

func medianRate(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
