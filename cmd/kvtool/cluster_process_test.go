package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/internal/loopport"
)

// The real-process cluster test: three `kvtool serve --node` processes (this
// test binary standing in for kvtool, see standInForKvtool) on loopback
// under HTTP writes spread over all of them. Each round kills the leader
// with SIGKILL (the others elect one and keep committing; the killed one
// restarts), then pauses the new leader with SIGSTOP until the others have
// elected another, and resumes it with SIGCONT (it steps down). At the end
// every node restarts, the three converge on one applied index and state
// hash, every acknowledged write is on every node, and each stopped data
// directory passes `kvtool verify` and `kvtool replay` rebuilds its hash.
//
// Peer ports are chosen up front (loopport.Free: below the ephemeral range,
// so no outgoing connection or port-0 listener of a parallel test takes
// one while its member is down): --cluster must name every member's peer
// address before any member starts, and a restarted member must bind its
// own address again anyway, so learning a port from a listening event
// would not help. The API listens on
// port 0 and is read back from each start's listening event.
// KVTOOL_CLUSTER_ROUNDS sets the rounds (default 5); KVTOOL_CLUSTER_DUMP=1
// makes a failed wait dump every member's goroutines (SIGQUIT) with its log.

const (
	clusterWriters    = 6
	clusterWaitLimit  = 90 * time.Second // every wait below is for a state; this only bounds a hang
	clusterOpTimeout  = 15 * time.Second
	clusterTestSecret = "a shared secret of the test cluster"
)

func TestClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts, kills and pauses real processes; skipped with -short")
	}
	rounds := 5
	if s := os.Getenv("KVTOOL_CLUSTER_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("KVTOOL_CLUSTER_ROUNDS=%q is not a positive integer", s)
		}
		rounds = n
	}
	cp := newClusterProcs(t)
	for _, name := range cp.names {
		cp.start(name)
	}
	ld := newClusterLoad()
	stop := ld.run(cp)
	defer stop()
	for round := range rounds {
		cp.killRound(ld, round)
		cp.pauseRound(ld, round)
	}
	stop()
	cp.checkFinal(ld)
}

// clusterProcs are the three member processes.
type clusterProcs struct {
	t     *testing.T
	bin   string
	names []string
	peers map[string]string // name -> peer address
	spec  string            // --cluster
	dirs  map[string]string

	mu     sync.Mutex
	procs  map[string]*process // nil while the member is down
	paused map[string]bool     // SIGSTOPped
}

func newClusterProcs(t *testing.T) *clusterProcs {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KVTOOL_TEST_AS_KVTOOL", "1")
	t.Setenv("KVTOOL_SECRET", clusterTestSecret)
	cp := &clusterProcs{t: t, bin: exe, names: []string{"n1", "n2", "n3"}, peers: map[string]string{},
		dirs: map[string]string{}, procs: map[string]*process{}, paused: map[string]bool{}}
	var spec []string
	root := t.TempDir()
	for _, name := range cp.names {
		addr, err := loopport.Free()
		if err != nil {
			t.Fatal(err)
		}
		cp.peers[name] = addr
		spec = append(spec, name+"="+cp.peers[name])
		cp.dirs[name] = filepath.Join(root, name)
	}
	cp.spec = strings.Join(spec, ",")
	return cp
}

// start starts member name and checks its listening event.
func (cp *clusterProcs) start(name string) {
	cp.t.Helper()
	p := startProcess(cp.t, cp.bin, cp.dirs[name], "--node", name, "--cluster", cp.spec)
	if p.l.Node != name || p.l.PeerAddr != cp.peers[name] {
		cp.t.Fatalf("%s announced node %q, peer address %q; want %q, %q", name, p.l.Node, p.l.PeerAddr, name, cp.peers[name])
	}
	cp.mu.Lock()
	cp.procs[name] = p
	cp.mu.Unlock()
}

// logs returns the members' logs, for a failure.
func (cp *clusterProcs) logs() string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var b strings.Builder
	for _, name := range cp.names {
		if p := cp.procs[name]; p != nil {
			fmt.Fprintf(&b, "\n--- %s's log:\n%s", name, p.stderr)
			ctx, cancel := context.WithTimeout(cp.t.Context(), 2*time.Second)
			st, err := p.c.LocalClusterStatus(ctx)
			cancel()
			js, _ := json.Marshal(st)
			fmt.Fprintf(&b, "--- %s's status: %s %v\n", name, js, err)
			if os.Getenv("KVTOOL_CLUSTER_DUMP") != "" { // goroutines of a hung member, for its debugger
				p.cmd.Process.Signal(syscall.SIGQUIT)
				p.cmd.Wait()
				fmt.Fprintf(&b, "--- %s after SIGQUIT:\n%s", name, p.stderr)
			}
		}
	}
	return b.String()
}

// proc returns member name's process if it is up and not paused.
func (cp *clusterProcs) proc(name string) *process {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.paused[name] {
		return nil
	}
	return cp.procs[name]
}

func (cp *clusterProcs) kill(name string) {
	cp.mu.Lock()
	p := cp.procs[name]
	cp.procs[name] = nil
	cp.mu.Unlock()
	p.kill()
}

func (cp *clusterProcs) signal(name string, sig syscall.Signal) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if err := cp.procs[name].cmd.Process.Signal(sig); err != nil {
		cp.t.Fatalf("signal %v to %s: %v", sig, name, err)
	}
	cp.paused[name] = sig == syscall.SIGSTOP
}

// status asks member name (a running one) for its own view of the cluster.
func (cp *clusterProcs) status(name string) (*api.ClusterStatus, error) {
	cp.mu.Lock()
	p := cp.procs[name]
	cp.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("%s is down", name)
	}
	ctx, cancel := context.WithTimeout(cp.t.Context(), 2*time.Second)
	defer cancel()
	return p.c.LocalClusterStatus(ctx)
}

// waitLeader waits until every member of among reports the same leader,
// one of among, not the member not, which reports itself leader; it
// returns its name.
func (cp *clusterProcs) waitLeader(among []string, not string) string {
	cp.t.Helper()
	deadline := time.Now().Add(clusterWaitLimit)
	var last string
	for {
		leader, why := cp.agreedLeader(among, not)
		if leader != "" {
			return leader
		}
		last = why
		if time.Now().After(deadline) {
			cp.t.Fatalf("no leader agreed on by %v (not %q) within %v: %s%s", among, not, clusterWaitLimit, last, cp.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (cp *clusterProcs) agreedLeader(among []string, not string) (string, string) {
	leader := ""
	for _, name := range among {
		st, err := cp.status(name)
		switch {
		case err != nil:
			return "", fmt.Sprintf("%s: %v", name, err)
		case st.Leader == "" || st.Leader == not || !slices.Contains(among, st.Leader):
			return "", fmt.Sprintf("%s sees leader %q (%s, term %d)", name, st.Leader, st.Role, st.Term)
		case leader != "" && st.Leader != leader:
			return "", fmt.Sprintf("%s sees leader %q, another %q", name, st.Leader, leader)
		case st.Leader == name && st.Role != "leader":
			return "", fmt.Sprintf("%s is named leader but is %s", name, st.Role)
		}
		leader = st.Leader
	}
	return leader, ""
}

// waitNotLeader waits until member name no longer thinks it leads.
func (cp *clusterProcs) waitNotLeader(name string) {
	cp.t.Helper()
	deadline := time.Now().Add(clusterWaitLimit)
	for {
		st, err := cp.status(name)
		if err == nil && st.Role != "leader" {
			return
		}
		if time.Now().After(deadline) {
			cp.t.Fatalf("%s did not step down within %v after SIGCONT: %+v, %v", name, clusterWaitLimit, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killRound kills the leader with SIGKILL, waits until the others elected
// another and acknowledged a write begun after the kill, and restarts it.
func (cp *clusterProcs) killRound(ld *clusterLoad, round int) {
	cp.t.Helper()
	leader := cp.waitLeader(cp.names, "")
	cp.kill(leader)
	gen := ld.next()
	next := cp.waitLeader(without(cp.names, leader), leader)
	ld.waitAck(cp.t, gen, fmt.Sprintf("round %d: after killing leader %s (new leader %s)", round, leader, next))
	cp.start(leader)
	cp.t.Logf("round %d: killed leader %s, %s took over, %d writes acknowledged", round, leader, next, ld.count())
}

// pauseRound pauses the leader with SIGSTOP until the others elected
// another and acknowledged a write begun after the pause, resumes it and
// waits until it stepped down (and a write after that is acknowledged).
func (cp *clusterProcs) pauseRound(ld *clusterLoad, round int) {
	cp.t.Helper()
	leader := cp.waitLeader(cp.names, "")
	cp.signal(leader, syscall.SIGSTOP)
	gen := ld.next()
	next := cp.waitLeader(without(cp.names, leader), leader)
	ld.waitAck(cp.t, gen, fmt.Sprintf("round %d: after pausing leader %s (new leader %s)", round, leader, next))
	cp.signal(leader, syscall.SIGCONT)
	cp.waitNotLeader(leader)
	ld.waitAck(cp.t, ld.next(), fmt.Sprintf("round %d: after resuming %s", round, leader))
	cp.t.Logf("round %d: paused leader %s, %s took over, it stepped down; %d writes acknowledged", round, leader, next, ld.count())
}

// checkFinal restarts every member, waits until all three have applied
// the same index with the same state hash, checks every acknowledged write
// on each, stops them, and verifies and replays each data directory.
func (cp *clusterProcs) checkFinal(ld *clusterLoad) {
	t := cp.t
	t.Helper()
	for _, name := range cp.names {
		cp.mu.Lock()
		p := cp.procs[name]
		cp.procs[name] = nil
		cp.mu.Unlock()
		p.terminate(t)
	}
	for _, name := range cp.names {
		cp.start(name)
	}
	cp.waitLeader(cp.names, "")
	h := cp.waitSameHash()
	acked := ld.snapshot()
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged: the test tested nothing")
	}
	for _, name := range cp.names {
		cp.checkAcked(name, acked)
	}
	for _, name := range cp.names {
		cp.procs[name].terminate(t)
	}
	for _, name := range cp.names {
		if stdout, stderr, code := kvRun(t, "", "verify", "--data", cp.dirs[name]); code != exitOK {
			t.Errorf("verify %s: exit %d\n%s%s", name, code, stdout, stderr)
		}
		// A leader elected while the members stop commits an empty entry
		// of its term: the index may pass h's, the state may not change.
		stdout, stderr, code := kvRun(t, "", "replay", "--json", "--data", cp.dirs[name])
		var rep struct {
			AppliedIndex uint64 `json:"applied_index"`
			StateHash    string `json:"state_hash"`
		}
		if code != exitOK || json.Unmarshal([]byte(stdout), &rep) != nil || rep.StateHash != h.StateHash || rep.AppliedIndex < h.AppliedIndex {
			t.Errorf("replay %s: exit %d, want applied index %d (or past it by empty entries) and state hash %s:\n%s%s", name, code, h.AppliedIndex, h.StateHash, stdout, stderr)
		}
	}
	t.Logf("%d writes acknowledged, %d failed or unknown; all three at index %d, state hash %s",
		len(acked), ld.failed.Load(), h.AppliedIndex, h.StateHash)
}

// waitSameHash waits until the three members answer /v1/hash with the
// same applied index and state hash.
func (cp *clusterProcs) waitSameHash() *api.HashResult {
	t := cp.t
	t.Helper()
	deadline := time.Now().Add(clusterWaitLimit)
	for {
		var hs []*api.HashResult
		var last string
		for _, name := range cp.names {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			h, err := cp.procs[name].c.Hash(ctx)
			cancel()
			if err != nil {
				last = fmt.Sprintf("%s: %v", name, err)
				break
			}
			hs = append(hs, h)
			last += fmt.Sprintf("%s at %d hash %s; ", name, h.AppliedIndex, h.StateHash)
		}
		if len(hs) == len(cp.names) && *hs[0] == *hs[1] && *hs[1] == *hs[2] {
			return hs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the members did not converge within %v: %s", clusterWaitLimit, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAcked checks every acknowledged write on member name (a local scan
// of its published state).
func (cp *clusterProcs) checkAcked(name string, acked map[string]string) {
	t := cp.t
	t.Helper()
	got := map[string]string{}
	err := cp.procs[name].c.Scan(t.Context(), client.ScanOptions{Prefix: "w"}, func(p api.Pair) bool {
		got[p.Key] = string(p.Value)
		return true
	})
	if err != nil {
		t.Fatalf("scan %s: %v", name, err)
	}
	missing := 0
	for k, v := range acked {
		if got[k] != v {
			if missing < 10 {
				t.Errorf("%s: acknowledged %s=%s, found %q", name, k, v, got[k])
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%s: %d of %d acknowledged writes missing", name, missing, len(acked))
	}
}

func without(names []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == name })
}

// clusterLoad writes unique keys through every member that is up, and
// records each acknowledged write and the generation it began in.
type clusterLoad struct {
	gen    atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	acked  map[string]string
	byGen  map[int64]int
}

func newClusterLoad() *clusterLoad {
	return &clusterLoad{acked: map[string]string{}, byGen: map[int64]int{}}
}

// next starts a new generation: writes begun from now on count in it.
func (ld *clusterLoad) next() int64 { return ld.gen.Add(1) }

func (ld *clusterLoad) count() int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return len(ld.acked)
}

func (ld *clusterLoad) snapshot() map[string]string {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	out := make(map[string]string, len(ld.acked))
	for k, v := range ld.acked {
		out[k] = v
	}
	return out
}

// waitAck waits until a write begun in generation gen (or later) was
// acknowledged.
func (ld *clusterLoad) waitAck(t *testing.T, gen int64, when string) {
	t.Helper()
	deadline := time.Now().Add(clusterWaitLimit)
	for {
		ld.mu.Lock()
		n := 0
		for g, c := range ld.byGen {
			if g >= gen {
				n += c
			}
		}
		ld.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no write acknowledged within %v", when, clusterWaitLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run starts the writers; the function it returns stops them and waits.
func (ld *clusterLoad) run(cp *clusterProcs) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range clusterWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ld.write(cp, w, stop)
		}()
	}
	var once sync.Once
	return func() { once.Do(func() { close(stop); wg.Wait() }) }
}

// write is writer w: key w<w>-<seq> = <seq>, each key written once, the
// member taken in turn among those up and not paused.
func (ld *clusterLoad) write(cp *clusterProcs, w int, stop <-chan struct{}) {
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		var p *process
		for i := range cp.names {
			if p = cp.proc(cp.names[(w+seq+i)%len(cp.names)]); p != nil {
				break
			}
		}
		if p == nil {
			time.Sleep(10 * time.Millisecond) // every member down or paused: the test restarts one
			continue
		}
		key, value := fmt.Sprintf("w%d-%07d", w, seq), strconv.Itoa(seq)
		gen := ld.gen.Load()
		ctx, cancel := context.WithTimeout(context.Background(), clusterOpTimeout)
		_, err := p.c.Put(ctx, key, []byte(value))
		cancel()
		if err != nil {
			ld.failed.Add(1)
			continue
		}
		ld.mu.Lock()
		ld.acked[key] = value
		ld.byGen[gen]++
		ld.mu.Unlock()
	}
}
