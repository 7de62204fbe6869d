package drill

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kvtool/kvtool/client"
)

// server is a `kvtool serve` child process on a loopback port: the real
// binary, so that a SIGKILL is exactly what an operator's kill -9 is.
type server struct {
	cmd  *exec.Cmd
	addr string
	c    *client.Client
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // its exit status, once done is closed
	log  *os.File
}

// startTimeout bounds how long a server may take to open its directory and
// print its address.
const startTimeout = 60 * time.Second

// startServer starts exe serve on data, listening on 127.0.0.1:0, with its
// logs in logPath, and waits until it prints the address it listens on.
// Automatic maintenance is off unless args turn it on; drills drive
// maintenance themselves, so they know when it runs.
func startServer(ctx context.Context, exe, data, logPath string, args ...string) (*server, error) {
	return startServerEnv(ctx, exe, data, logPath, nil, args...)
}

// startServerEnv is startServer with env added to the child's environment
// (a cluster node's secret).
func startServerEnv(ctx context.Context, exe, data, logPath string, env []string, args ...string) (*server, error) {
	s, lines, err := spawnServer(exe, data, logPath, env, args...)
	if err != nil {
		return nil, err
	}
	if err := s.waitListening(ctx, lines, logPath); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// spawnServer starts the process of startServerEnv and returns at once,
// with the channel its first stdout line (the address) arrives on: a drill
// that must kill a server while it starts up watches its log instead.
func spawnServer(exe, data, logPath string, env []string, args ...string) (*server, <-chan string, error) {
	if exe == "" {
		return nil, nil, errors.New("no kvtool executable to start (the drill needs the real binary)")
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	argv := append([]string{"serve", "--data", data, "--json", "--listen", "127.0.0.1:0",
		"--delta-every", "0", "--merge-after", "0", "--compact-wal-size", "0"}, args...)
	cmd := exec.Command(exe, argv...)
	cmd.Stderr = logf
	cmd.Dir = filepath.Dir(data)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("start %s serve: %w", exe, err)
	}
	s := &server{cmd: cmd, done: make(chan struct{}), log: logf}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		io.Copy(logf, r) // the stopped line, if any; ends when the process does
		s.err = cmd.Wait()
		close(s.done)
	}()
	return s, lines, nil
}

func (s *server) waitListening(ctx context.Context, lines <-chan string, logPath string) error {
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	var line string
	select {
	case line = <-lines:
	case <-timer.C:
		return fmt.Errorf("kvtool serve printed no address in %v (its log: %s)", startTimeout, logPath)
	case <-ctx.Done():
		return ctx.Err()
	}
	var l struct {
		ListenAddr string `json:"listen_addr"`
	}
	if err := json.Unmarshal([]byte(line), &l); err != nil || l.ListenAddr == "" {
		<-s.done
		return fmt.Errorf("kvtool serve did not start (%v; its log: %s)", s.err, logPath)
	}
	s.addr = l.ListenAddr
	s.c = client.New(s.addr)
	return nil
}

// kill sends SIGKILL and reaps the process.
func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.close()
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(timeout time.Duration) error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-s.done:
	case <-timer.C:
		s.kill()
		return fmt.Errorf("kvtool serve did not stop within %v of SIGTERM; killed it", timeout)
	}
	s.close()
	if s.err != nil {
		return fmt.Errorf("kvtool serve exited with %v after SIGTERM (see %s)", s.err, s.log.Name())
	}
	return nil
}

// alive reports whether the process is still running.
func (s *server) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *server) close() {
	if s.c != nil {
		s.c.Close()
	}
	s.log.Close()
}
