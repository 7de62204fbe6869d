package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvtool/kvtool/client"
)

// The real-process test: start the built kvtool serve, move money between
// accounts over HTTP from many goroutines while recording which transfers
// were acknowledged, SIGKILL the process at a random moment, restart it on
// the same directory and check that every acknowledged transfer is there,
// that no transfer is there in part, and that the total holds.

const (
	killAccounts = 20
	killInitial  = 1000
	killWorkers  = 8
)

func TestKillUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills real processes; skipped with -short")
	}
	rounds := 10
	if s := os.Getenv("KVTOOL_KILL_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("KVTOOL_KILL_ROUNDS=%q is not a positive integer", s)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d rounds", seed, rounds)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	bin := buildKvtool(t)
	data := filepath.Join(t.TempDir(), "data")
	b := newBank()
	for round := range rounds {
		p := startProcess(t, bin, data)
		if round == 0 {
			b.init(t, p.c)
		} else {
			b.verify(t, p, fmt.Sprintf("after kill %d", round))
		}
		b.runUntilKilled(t, p, time.Duration(100+rng.IntN(600))*time.Millisecond, rng.Uint64())
	}
	p := startProcess(t, bin, data)
	b.verify(t, p, fmt.Sprintf("after kill %d", rounds))
	p.terminate(t)
	t.Logf("%d transfers acknowledged, %d aborted by the check, %d unknown (in flight at a kill)",
		b.acked.Load(), b.aborted.Load(), b.unknown.Load())
	if b.acked.Load() == 0 {
		t.Fatal("no transfer was acknowledged: the test tested nothing")
	}
}

// buildKvtool builds this package's binary into a temporary directory.
func buildKvtool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kvtool")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is a running `kvtool serve`.
type process struct {
	cmd    *exec.Cmd
	c      *client.Client
	l      listeningJSON // what it announced
	stderr *lockedBuffer
}

// startProcess starts kvtool serve on data with small segments (so the
// workload rotates them) and more flags args, and waits for its listening
// line.
func startProcess(t *testing.T, bin, data string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--data", data, "--json", "--listen", "127.0.0.1:0", "--segment-size", "256KiB"}, args...)...)
	p := &process{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	var l listeningJSON
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.ListenAddr == "" {
			t.Fatalf("serve did not start: %q\nstderr:\n%s", line, p.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not print its address in 60s\nstderr:\n%s", p.stderr)
	}
	p.c, p.l = client.New(l.ListenAddr), l
	return p
}

// kill sends SIGKILL and reaps the process.
func (p *process) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	p.c.Close()
}

// terminate sends SIGTERM and checks the server shuts down cleanly.
func (p *process) terminate(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after SIGTERM: %v\nstderr:\n%s", err, p.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop after SIGTERM\nstderr:\n%s", p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "msg=stopped") {
		t.Errorf("no clean stop in the logs:\n%s", p.stderr)
	}
	p.c.Close()
}

// transfer is one attempted move of money, with a unique id; the
// transaction also puts "xfer:<id>", so after a crash the id says whether
// the transfer was applied.
type transfer struct {
	id       uint64
	from, to int
	amount   int64
}

func (x transfer) ops() []client.Op {
	from, to := acct(x.from), acct(x.to)
	return []client.Op{
		client.AddOp(from, -x.amount),
		client.AddOp(to, x.amount),
		client.CheckMinOp(from, 0),
		client.PutOp(xferKey(x.id), fmt.Sprintf("%d,%d,%d", x.from, x.to, x.amount)),
	}
}

func acct(i int) string        { return fmt.Sprintf("acct:%02d", i) }
func xferKey(id uint64) string { return fmt.Sprintf("xfer:%012d", id) }
func parseXferKey(k string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimPrefix(k, "xfer:"), 10, 64)
	return n
}

// bank records every transfer attempted and what the server answered.
type bank struct {
	nextID                  atomic.Uint64
	mu                      sync.Mutex
	attempted               map[uint64]transfer
	ackedIDs, abortedIDs    map[uint64]bool
	acked, aborted, unknown atomic.Int64
}

func newBank() *bank {
	return &bank{attempted: map[uint64]transfer{}, ackedIDs: map[uint64]bool{}, abortedIDs: map[uint64]bool{}}
}

func (b *bank) init(t *testing.T, c *client.Client) {
	t.Helper()
	var ops []client.Op
	for i := range killAccounts {
		ops = append(ops, client.PutOp(acct(i), strconv.Itoa(killInitial)))
	}
	if _, err := c.Txn(t.Context(), ops...); err != nil {
		t.Fatalf("initialise the accounts: %v", err)
	}
}

// runUntilKilled runs killWorkers goroutines of transfers and SIGKILLs the
// server d after they got their first transfers acknowledged.
func (b *bank) runUntilKilled(t *testing.T, p *process, d time.Duration, seed uint64) {
	var killed atomic.Bool
	var wg sync.WaitGroup
	for w := range killWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for !killed.Load() {
				b.one(p.c, rng)
			}
		}()
	}
	// The kill lands at a random moment, but only once the load is on: a
	// loaded machine may take a while to get the first transfers through.
	start := b.acked.Load()
	deadline := time.Now().Add(60 * time.Second)
	for b.acked.Load() < start+killWorkers && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(d)
	killed.Store(true)
	p.kill()
	wg.Wait()
}

// one attempts one random transfer and records the answer.
func (b *bank) one(c *client.Client, rng *rand.Rand) {
	x := transfer{id: b.nextID.Add(1), from: rng.IntN(killAccounts), amount: 1 + rng.Int64N(300)}
	x.to = (x.from + 1 + rng.IntN(killAccounts-1)) % killAccounts
	b.mu.Lock()
	b.attempted[x.id] = x
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := c.Txn(ctx, x.ops()...)
	cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err == nil:
		b.ackedIDs[x.id] = true
		b.acked.Add(1)
	case errors.Is(err, client.ErrCheckFailed):
		b.abortedIDs[x.id] = true
		b.aborted.Add(1)
	default:
		b.unknown.Add(1) // the server died with it in flight
	}
}

// verify reads the whole state from the restarted server and checks it
// against what was acknowledged.
func (b *bank) verify(t *testing.T, p *process, when string) {
	t.Helper()
	balances, present := b.read(t, p.c)
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.ackedIDs {
		if !present[id] {
			t.Fatalf("%s: acknowledged transfer %d (%+v) is lost", when, id, b.attempted[id])
		}
	}
	want := make([]int64, killAccounts)
	for i := range want {
		want[i] = killInitial
	}
	for id := range present {
		x, ok := b.attempted[id]
		switch {
		case !ok:
			t.Fatalf("%s: transfer %d is present but was never attempted", when, id)
		case b.abortedIDs[id]:
			t.Fatalf("%s: transfer %d is present but was aborted by its check", when, id)
		}
		want[x.from] -= x.amount
		want[x.to] += x.amount
	}
	var total int64
	for i, got := range balances {
		total += got
		if got < 0 {
			t.Errorf("%s: %s is negative: %d", when, acct(i), got)
		}
		// Each account is exactly its initial balance moved by the
		// transfers whose ids are present: no transfer is there in part.
		if got != want[i] {
			t.Errorf("%s: %s = %d, but the transfers present make it %d", when, acct(i), got, want[i])
		}
	}
	if total != killAccounts*killInitial {
		t.Fatalf("%s: total %d, want %d", when, total, killAccounts*killInitial)
	}
}

// read scans the balances and the ids of the transfers present.
func (b *bank) read(t *testing.T, c *client.Client) ([]int64, map[uint64]bool) {
	t.Helper()
	balances := make([]int64, killAccounts)
	seen := 0
	err := c.Scan(t.Context(), client.ScanOptions{Prefix: "acct:"}, func(p client.Pair) bool {
		i, _ := strconv.Atoi(strings.TrimPrefix(p.Key, "acct:"))
		n, err := strconv.ParseInt(string(p.Value), 10, 64)
		if err != nil || i < 0 || i >= killAccounts {
			t.Errorf("bad account %q = %q", p.Key, p.Value)
		}
		balances[i] = n
		seen++
		return true
	})
	if err != nil || seen != killAccounts {
		t.Fatalf("scan accounts: %d of %d, %v", seen, killAccounts, err)
	}
	present := map[uint64]bool{}
	err = c.Scan(t.Context(), client.ScanOptions{Prefix: "xfer:"}, func(p client.Pair) bool {
		present[parseXferKey(p.Key)] = true
		return true
	})
	if err != nil {
		t.Fatalf("scan transfers: %v", err)
	}
	return balances, present
}
