package xfertest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The other end of a process benchmark: the benchmark re-executes its own
// test binary, running only the peer's test, with PeerAddrEnv set to the
// address to dial, so that neither end's CPU, heap or garbage collection
// is charged to the other, as between two machines. With
// PeerCPUProfileEnv set to a path P, each peer writes its CPU profile to
// P.<n>, n counting the peers this process started from 1, for a profile
// of the receiving end.
const (
	PeerAddrEnv       = "KVTOOL_XFERTEST_PEER"
	PeerCPUProfileEnv = "KVTOOL_BENCH_PEER_CPUPROFILE"
)

// peers counts the peer processes started, to number their profiles.
var peers atomic.Int64

// PeerConn is the peer test's start: it skips the test unless this process
// is a peer that RunPeer started, and otherwise returns the connection to
// its parent, closed when the test ends.
func PeerConn(t testing.TB) net.Conn {
	t.Helper()
	addr := os.Getenv(PeerAddrEnv)
	if addr == "" {
		t.Skip("the other end of a process benchmark; the benchmark starts this test itself")
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// PeerRun is what RunPeer measured.
type PeerRun struct {
	// Elapsed is the time from the connection to the peer's exit (a peer
	// exits once its end is done: durable, verified).
	Elapsed time.Duration
	// PeerCPU is the peer process's CPU time, user and system: less
	// sensitive to a loaded machine than Elapsed. SendCPU is this
	// process's during send (every goroutine's, not only send's).
	PeerCPU, SendCPU time.Duration
}

// RunPeer starts this test binary's test named test as a peer process with
// env added to its environment, waits until it has connected, runs send on
// the connection, closes it and waits for the peer to exit. A peer that
// fails fails b, with its output.
func RunPeer(b testing.TB, test string, env []string, send func(net.Conn) error) PeerRun {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	args := []string{"-test.run=^" + test + "$", "-test.v"}
	if p := os.Getenv(PeerCPUProfileEnv); p != "" {
		args = append(args, fmt.Sprintf("-test.cpuprofile=%s.%d", p, peers.Add(1)))
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), PeerAddrEnv+"="+ln.Addr().String()), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		ln.Close() // a peer that died before dialing must not leave Accept waiting
	}()
	c, err := ln.Accept()
	if err != nil {
		b.Fatalf("%s process did not connect: %v (exit: %v)\n%s", test, err, <-exited, out.String())
	}
	start, cpu0 := time.Now(), CPU()
	sendErr := send(c)
	sendCPU := CPU() - cpu0
	c.Close()
	err = <-exited
	d := time.Since(start)
	if err != nil || sendErr != nil {
		b.Fatalf("%s: send: %v; peer process: %v\n%s", test, sendErr, err, out.String())
	}
	return PeerRun{Elapsed: d, PeerCPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), SendCPU: sendCPU}
}

// CPU is this process's CPU time so far, user and system.
func CPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
