package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/vfs"
)

// The joining member of BenchmarkJoinThroughput runs in a process of its
// own: the benchmark re-executes its test binary with KVTOOL_JOINER set to
// the member's JOIN record (JSON) and its peer listener as file descriptor
// 3; the child runs TestJoinerProcess until its stdin closes. The child
// runs at the lowest priority (joinerCommand) so that, on a shared
// machine, the scheduler gives the founders the cores first: the joiner's
// CPU is not charged to the leader, as when the joiner is another machine.
// Where its store is: see joinerBase.
const (
	joinerEnv    = "KVTOOL_JOINER"
	joinerDirEnv = "KVTOOL_JOINER_DIR"
	// joinBenchKeysEnv sets the keys loaded before the joins (default
	// 200000, 100 random bytes each).
	joinBenchKeysEnv = "KVTOOL_JOIN_BENCH_KEYS"
)

// joinerBase is where joiners keep their stores: KVTOOL_JOINER_DIR ("mem:"
// for the in-memory file system), by default /dev/shm (a tmpfs: the
// kernel's file system without this disk's fsyncs, as another machine's
// disk; vfs.MemFS costs the joiner far more CPU than a kernel file system
// would), or in memory where there is none.
func joinerBase() string {
	if d := os.Getenv(joinerDirEnv); d != "" {
		return d
	}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return "mem:"
}

// TestJoinerProcess is the joining member's process; run on its own it
// skips.
func TestJoinerProcess(t *testing.T) {
	spec := os.Getenv(joinerEnv)
	if spec == "" {
		t.Skip("the joining member of BenchmarkJoinThroughput; the benchmark starts this test itself")
	}
	var rec JoinRecord
	if err := json.Unmarshal([]byte(spec), &rec); err != nil {
		t.Fatalf("%s: %v", joinerEnv, err)
	}
	ln, err := net.FileListener(os.NewFile(3, "peer listener"))
	if err != nil {
		t.Fatal(err)
	}
	var fs vfs.FS = vfs.NewMem()
	dir := "/data"
	if d := os.Getenv(joinerDirEnv); d != "mem:" {
		fs, dir = vfs.Default, d
	}
	// As kvtool serve opens a member's store: its WAL synced every
	// StoreWALSync, maintenance (an install that writes the state among
	// it) paced at its default rate and share.
	st, err := store.Open(store.Options{FS: fs, Dir: dir, Create: true, Replica: true, WALSyncInterval: StoreWALSync,
		MaintenanceRate: 32 << 20, MaintenanceShare: store.DefaultMaintenanceShare})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := StartMember(MemberConfig{Name: rec.Self.Name, PeerListener: ln, Secret: testSecret, Join: &rec,
		Node: Config{FS: fs, Dir: dir, Store: st}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// The CPU this process used in each install phase it went through,
	// for the benchmark's log (joinerCPULine).
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin) // until the benchmark lets go
		close(done)
	}()
	var out []string
	phase, cpu0, t0 := "starting", cpuTime(), time.Now()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		p := m.InstallProgress().Phase
		if p == "" || p == phase {
			continue
		}
		now, cpu := time.Now(), cpuTime()
		out = append(out, fmt.Sprintf("%s %v %.2fs", phase, now.Sub(t0).Round(time.Millisecond), (cpu-cpu0).Seconds()))
		phase, cpu0, t0 = p, cpu, now
		if p == "installed" { // the rest is following the log
			fmt.Printf("%s%s; %s\n", joinerCPULine, strings.Join(out, ", "), tailLength(m.InstallProgress()))
		}
	}
}

// tailLength says how many log entries came after the snapshot's
// checkpoint: the install replays them and logs them into its WAL.
func tailLength(p InstallProgress) string {
	var c uint64
	fmt.Sscanf(p.Transfer.Snapshot, "%x-", &c)
	return fmt.Sprintf("tail %d entries (%d..%d)", p.Index-c, c+1, p.Index)
}

// joinerCPULine starts the joiner's line giving the CPU seconds it used
// in each phase of its install.
const joinerCPULine = "joiner cpu by phase: "

// joinBench is BenchmarkJoinThroughput's cluster: three founding members
// on the real file system (every write fsync'd) over TCP, in this
// process, with a write load running on them the whole time.
type joinBench struct {
	b        *testing.B
	ms       []*Member
	commits  atomic.Int64 // puts acknowledged so far
	joins    int
	fs       *syncTimer    // the founders' file system, timing their fsyncs
	id       atomic.Uint64 // the member joining now (0: none)
	streamed atomic.Int64  // unix nanos the leader's transfer.Send to id ended (0: not yet)
}

// syncTimer is vfs.Default timing each file Sync (fdatasync), so the
// benchmark can tell whether a join slows the founders' disk or their CPU.
type syncTimer struct {
	vfs.FS
	mu    sync.Mutex
	syncs []timedSync
}

type timedSync struct {
	at time.Time // when it returned
	d  time.Duration
}

func (t *syncTimer) Create(name string) (vfs.File, error) { return t.wrap(t.FS.Create(name)) }
func (t *syncTimer) OpenReadWrite(name string) (vfs.File, error) {
	return t.wrap(t.FS.OpenReadWrite(name))
}

func (t *syncTimer) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &timedFile{File: f, t: t}, nil
}

// between returns the count, mean and 99th percentile of the syncs that
// returned in [from, to).
func (t *syncTimer) between(from, to time.Time) (int, time.Duration, time.Duration) {
	t.mu.Lock()
	var ds []time.Duration
	for _, s := range t.syncs {
		if !s.at.Before(from) && s.at.Before(to) {
			ds = append(ds, s.d)
		}
	}
	t.mu.Unlock()
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return len(ds), sum / time.Duration(len(ds)), ds[len(ds)*99/100]
}

// syncsString describes the syncs between from and to.
func (t *syncTimer) syncsString(from, to time.Time) string {
	n, mean, p99 := t.between(from, to)
	return fmt.Sprintf("%.0f fsync/s mean %v p99 %v", float64(n)/to.Sub(from).Seconds(), mean.Round(time.Microsecond), p99.Round(time.Microsecond))
}

type timedFile struct {
	vfs.File
	t *syncTimer
}

func (f *timedFile) Sync() error {
	t0 := time.Now()
	err := f.File.Sync()
	now := time.Now()
	f.t.mu.Lock()
	f.t.syncs = append(f.t.syncs, timedSync{now, now.Sub(t0)})
	f.t.mu.Unlock()
	return err
}

// StartWriteback keeps the OS file's write-back hint (format.PublishFile
// paces large files with it).
func (f *timedFile) StartWriteback(off, n int64, wait bool) error {
	if ws, ok := f.File.(vfs.WritebackStarter); ok {
		return ws.StartWriteback(off, n, wait)
	}
	return nil
}

func newJoinBench(b *testing.B, dir string) *joinBench {
	spec := map[string]string{}
	lns := map[string]net.Listener{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprint("n", i)
		lns[name] = listen(b)
		spec[name] = lns[name].Addr().String()
	}
	jb := &joinBench{b: b, fs: &syncTimer{FS: vfs.Default}}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprint("n", i)
		d := filepath.Join(dir, name)
		// As kvtool serve opens a member's store: its WAL synced every
		// StoreWALSync (without it, every apply synced it), checkpoints
		// paced at the default --maintenance-rate and share (unpaced,
		// one ran at full speed in the middle of a measured window).
		st, err := store.Open(store.Options{FS: jb.fs, Dir: d, Create: true, Replica: true, WALSyncInterval: StoreWALSync,
			MaintenanceRate: 32 << 20, MaintenanceShare: store.DefaultMaintenanceShare})
		if err != nil {
			b.Fatal(err)
		}
		// The production defaults, but for a log compacted right after
		// the load (RetainEntries: the load is a few hundred big entries).
		m, err := StartMember(MemberConfig{Name: name, Members: spec, PeerListener: lns[name], Secret: testSecret,
			Node: Config{FS: jb.fs, Dir: d, Store: st, RetainEntries: 8, CompactInterval: time.Second}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close(); st.Close() })
		jb.ms = append(jb.ms, m)
	}
	hook := func(from, to uint64, res transfer.SendResult, err error) {
		if err == nil && to == jb.id.Load() {
			jb.streamed.Store(time.Now().UnixNano())
		}
	}
	sendHook.Store(&hook)
	b.Cleanup(func() { sendHook.Store(nil) })
	memberLeaderB(b, jb.ms)
	return jb
}

func memberLeaderB(b testing.TB, ms []*Member) *Member {
	var lead *Member
	waitFor(b, "a leader every member knows", func() bool {
		l, _ := ms[0].Leader()
		for _, m := range ms {
			if ml, _ := m.Leader(); ml != l || l == 0 {
				return false
			}
			if m.ID() == l {
				lead = m
			}
		}
		return lead != nil
	})
	return lead
}

// leader returns the member that leads now.
func (jb *joinBench) leader() *Member { return memberLeaderB(jb.b, jb.ms) }

// load writes keys keys of 100 random bytes, 1000 to an entry, then
// checkpoints every store and compacts every raft log: a member joining
// from then on needs a snapshot.
func (jb *joinBench) load(keys int) {
	rng := rand.New(rand.NewPCG(1, 2))
	lead := jb.leader()
	for i := 0; i < keys; i += 1000 {
		txn := &store.Txn{}
		for j := i; j < min(keys, i+1000); j++ {
			val := make([]byte, 100)
			for k := range val {
				val[k] = byte(rng.UintN(256))
			}
			txn.Ops = append(txn.Ops, store.Op{Kind: store.OpPut, Key: fmt.Sprintf("load/%08d", j), Value: val})
		}
		if _, err := lead.Propose(context.Background(), Request{Txn: txn}); err != nil {
			jb.b.Fatal(err)
		}
	}
	idx := lead.Store().Snapshot().Index()
	waitFor(jb.b, "every member to apply the load", func() bool {
		for _, m := range jb.ms {
			if m.Store().Snapshot().Index() < idx {
				return false
			}
		}
		return true
	})
	for _, m := range jb.ms {
		if _, err := m.Store().Checkpoint(context.Background()); err != nil {
			jb.b.Fatal(err)
		}
		if res, err := m.CompactLog(); err != nil {
			jb.b.Fatal(err)
		} else {
			jb.b.Logf("%s: compact %+v, manifest first %d", m.Name(), res, m.Store().CurrentManifest().WALFirstIndex)
		}
	}
	if si := jb.leader().ls.state().SnapIndex; si == 0 {
		jb.b.Fatal("the leader's raft log was not compacted: a joiner would replay it instead of taking a snapshot")
	}
}

// run keeps clients goroutines putting keys through every member until
// stop closes, counting the acknowledged puts.
func (jb *joinBench) run(clients int, stop chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	var next atomic.Int64
	for c := range clients {
		wg.Go(func() {
			m, val := jb.ms[c%len(jb.ms)], make([]byte, 100)
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := m.Propose(ctx, Request{Txn: put(fmt.Sprintf("run/%09d", next.Add(1)), string(val))})
				cancel()
				if err == nil {
					jb.commits.Add(1)
				}
			}
		})
	}
	return &wg
}

// setRate sets every member's snapshot rate (bytes/s, 0: no limit).
func (jb *joinBench) setRate(bps int64) {
	for _, m := range jb.ms {
		m.snaps.rate.Store(bps)
	}
}

// joinerCommand runs the joiner's process at the lowest priority from its
// first thread on: under `nice -n 19`, or under SCHED_IDLE (`chrt -i 0`:
// it runs only on a core the founders leave idle) with
// KVTOOL_JOIN_BENCH_JOINER=idle. A nice value is a thread's on Linux,
// not the process's: the child's own setpriority, as this benchmark did
// before, lowered only the thread that called it, and the joiner's other
// threads competed with the founders at nice 0.
func joinerCommand(b *testing.B, name string, args ...string) *exec.Cmd {
	wrap := []string{"nice", "-n", "19"}
	if os.Getenv("KVTOOL_JOIN_BENCH_JOINER") == "idle" {
		wrap = []string{"chrt", "-i", "0"}
	}
	if _, err := exec.LookPath(wrap[0]); err != nil {
		b.Logf("%s not found: the joiner runs at the founders' priority", wrap[0])
		return exec.Command(name, args...)
	}
	return exec.Command(wrap[0], append(append(wrap[1:], name), args...)...)
}

// joinResult is what one join measured.
type joinResult struct {
	took          time.Duration // from the add to the promotion
	commitsPerSec float64       // the load's, meanwhile
	snapshots     int64         // snapshots the leader sent
	bytes         int64         // their chunk bytes
	phases        string        // the load's rate in each phase of the join
	cpu           float64       // CPU seconds this process (the cluster and its load) used meanwhile
	childCPU      float64       // CPU seconds the joiner's process used in all
	childPhases   string        // the joiner's CPU in each phase of its install
}

func (r joinResult) cpuPer1000() float64 {
	return r.cpu / (r.commitsPerSec * r.took.Seconds()) * 1000
}

// cpuTime is the CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// phase names where a join stands, as the leader sees it.
func (jb *joinBench) phase(id uint64) string {
	lead := jb.leader()
	lead.snaps.mu.Lock()
	sending := lead.snaps.sending[id]
	lead.snaps.mu.Unlock()
	pr, ok := lead.raft.Status().Progress[id]
	switch {
	case sending && jb.streamed.Load() == 0:
		return "streaming" // the chunks and the tail, up to the joiner's cutover
	case sending:
		return "installing" // the joiner installs it (MsgSnap) until the leader sees its match
	case !ok || pr.Match == 0:
		return "waiting"
	}
	return "following"
}

// phases times the phases of a join and the commits in each.
type phases struct {
	names   []string
	start   []time.Time
	commits []int64
	fs      *syncTimer
}

func newPhases(c0 int64, t0 time.Time, fs *syncTimer) *phases {
	return &phases{names: []string{"adding"}, start: []time.Time{t0}, commits: []int64{c0}, fs: fs}
}

func (p *phases) note(name string, commits int64) {
	if p.names[len(p.names)-1] != name {
		p.names, p.start, p.commits = append(p.names, name), append(p.start, time.Now()), append(p.commits, commits)
	}
}

func (p *phases) String() string {
	var out []string
	for i := 0; i+1 < len(p.names); i++ {
		d := p.start[i+1].Sub(p.start[i])
		out = append(out, fmt.Sprintf("%s %v %.0f/s (%s)", p.names[i], d.Round(time.Millisecond), float64(p.commits[i+1]-p.commits[i])/d.Seconds(),
			p.fs.syncsString(p.start[i], p.start[i+1])))
	}
	return strings.Join(out, ", ")
}

// join adds a new member in a process of its own (see TestJoinerProcess),
// waits until it is promoted, measuring the load meanwhile, then removes
// it and lets its process go.
func (jb *joinBench) join() joinResult {
	b := jb.b
	jb.joins++
	name := fmt.Sprintf("j%d", jb.joins)
	ln := listen(b)
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		b.Fatal(err)
	}
	self := MemberRecord{Name: name, ID: MemberID(name), PeerAddr: ln.Addr().String()}
	jb.id.Store(self.ID)
	jb.streamed.Store(0)
	lead := jb.leader()
	before := lead.SnapshotStats()
	c0, t0, cpu0 := jb.commits.Load(), time.Now(), cpuTime()
	if err := lead.AddLearner(context.Background(), self); err != nil {
		b.Fatal(err)
	}
	rec, _ := json.Marshal(JoinRecordFor(self, lead.JoinAnswer()))
	args := []string{"-test.run=^TestJoinerProcess$", "-test.v"}
	if d := os.Getenv("KVTOOL_JOINER_PROFILE"); d != "" { // a CPU profile of each joiner, in that directory
		args = append(args, "-test.cpuprofile="+filepath.Join(d, name+".prof"))
	}
	cmd := joinerCommand(b, os.Args[0], args...)
	cmd.Env = append(os.Environ(), joinerEnv+"="+string(rec))
	if n := os.Getenv("KVTOOL_JOINER_PROCS"); n != "" { // the joiner's GOMAXPROCS (a diagnostic: its CPU bursts on both cores)
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+n)
	}
	if base := joinerBase(); base != "mem:" { // each joiner in a directory of its own under it
		d, err := os.MkdirTemp(base, "kvtool-joiner-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(d)
		cmd.Env = append(cmd.Env, joinerDirEnv+"="+d)
	} else {
		cmd.Env = append(cmd.Env, joinerDirEnv+"=mem:")
	}
	cmd.ExtraFiles = []*os.File{lf}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	lf.Close()
	ln.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Minute)
	ph := newPhases(c0, t0, jb.fs)
	for !slices.Contains(jb.leader().Membership().Conf.GetVoters(), self.ID) {
		ph.note(jb.phase(self.ID), jb.commits.Load())
		select {
		case err := <-exited:
			b.Fatalf("joiner %s exited: %v\n%s", name, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("joiner %s not promoted in 10 minutes; leader %+v\n%s", name, jb.leader().SnapshotStats(), out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	res := joinResult{took: time.Since(t0)}
	if jb.streamed.Load() == 0 { // every join here takes a snapshot (load compacted the logs)
		b.Fatalf("joiner %s promoted but the leader's snapshot send to it never ended (sendHook): the phases are wrong", name)
	}
	ph.note("promoted", jb.commits.Load())
	res.phases = ph.String()
	res.cpu = (cpuTime() - cpu0).Seconds()
	res.commitsPerSec = float64(jb.commits.Load()-c0) / res.took.Seconds()
	after := lead.SnapshotStats()
	res.snapshots, res.bytes = after.Sent-before.Sent, after.BytesSent-before.BytesSent
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := jb.leader().Remove(ctx, self.ID); err != nil {
		b.Fatalf("remove joiner %s: %v", name, err)
	}
	stdin.Close()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	res.childCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	for _, line := range strings.Split(out.String(), "\n") {
		if i := strings.Index(line, joinerCPULine); i >= 0 {
			res.childPhases = line[i+len(joinerCPULine):]
		}
	}
	return res
}

// aloneResult is what a window without a join measured.
type aloneResult struct {
	commitsPerSec float64
	cpuPer1000    float64 // CPU seconds this process used per 1000 commits
	syncs         string  // the founders' fsyncs meanwhile
}

// alone measures the load for d without a join.
func (jb *joinBench) alone(d time.Duration) aloneResult {
	c0, t0, cpu0 := jb.commits.Load(), time.Now(), cpuTime()
	time.Sleep(d)
	n, t1 := jb.commits.Load()-c0, time.Now()
	if syncs, _, _ := jb.fs.between(t0, t1); n > 0 && syncs == 0 {
		jb.b.Fatalf("%d commits in %v but no fsync of the founders seen: the timing file system lost their files", n, d)
	}
	return aloneResult{float64(n) / t1.Sub(t0).Seconds(), (cpuTime() - cpu0).Seconds() / float64(n) * 1000, jb.fs.syncsString(t0, t1)}
}

// burning measures the load for d beside a process at nice 19 that
// spins on one core the whole time (KVTOOL_JOIN_BENCH_BURN): how much a
// background process's CPU alone costs the founders, to tell it apart
// from what a join itself costs them.
// With KVTOOL_JOIN_BENCH_BURN=idle the spinner runs under SCHED_IDLE
// (chrt -i 0) instead.
func (jb *joinBench) burning(d time.Duration) aloneResult {
	cmd := exec.Command("nice", "-n", "19", "sh", "-c", "while :; do :; done")
	if os.Getenv("KVTOOL_JOIN_BENCH_BURN") == "idle" {
		cmd = exec.Command("chrt", "-i", "0", "sh", "-c", "while :; do :; done")
	}
	if err := cmd.Start(); err != nil {
		jb.b.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	return jb.alone(d)
}

// kept is the load's rate during a join as a percentage of its rate in
// the windows without a join just before and just after it (each as long
// as a join), so a machine whose load drifts (other processes) shifts
// both sides alike.
func kept(join float64, before, after aloneResult) float64 {
	return join / ((before.commitsPerSec + after.commitsPerSec) / 2) * 100
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// BenchmarkJoinThroughput measures the cluster's commits (16 clients
// putting through the three members) while a fourth member joins by
// snapshot and is promoted, at the default --transfer-max-rate (32 MiB/s)
// and unlimited, beside the same load without a join, b.N rounds (issue
// 12 "Speed"). Every join is bracketed by windows without a join as long
// as the last join took (alone, paced join, alone, unlimited join, alone,
// ...), and each join's rate is compared with the mean of the two windows
// around it: a drift in the machine's load (other processes) moves both
// sides. Before the rounds the cluster holds KVTOOL_JOIN_BENCH_KEYS keys
// (default 200000) and every raft log is compacted, so each joiner needs a
// snapshot; each joiner runs in a process of its own (TestJoinerProcess)
// and is removed after its round. "%-kept" is the median over the rounds
// of the commits during the paced join as a percentage of those around it
// (min and max beside it); "s-to-promotion" the time from the add to the
// promotion. Each round's log line gives every phase's commit rate and the
// founders' fsync latency in it. "joiner-cpu-s" is the median CPU of a
// paced join's joiner process, "cpu-s/1000-join" and "cpu-s/1000-alone"
// the founders' CPU per 1000 commits during a paced join and in the window
// before it: figures a busy machine moves less than the rates.
//
//	go test -run '^$' -bench JoinThroughput -benchtime 5x ./cluster/
func BenchmarkJoinThroughput(b *testing.B) {
	keys := 200000
	if s := os.Getenv(joinBenchKeysEnv); s != "" {
		keys, _ = strconv.Atoi(s)
	}
	dir := b.TempDir()
	if d := os.Getenv("KVTOOL_BENCH_DIR"); d != "" {
		dir, _ = os.MkdirTemp(d, "joinbench")
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	jb := newJoinBench(b, dir)
	jb.load(keys)
	stop := make(chan struct{})
	wg := jb.run(16, stop)
	defer wg.Wait()
	defer close(stop)
	jb.alone(time.Second) // warm up
	var alone, paced, unlimited, keptP, keptU, pacedTook, unlimitedTook, snaps, bytes []float64
	// CPU figures, which a loaded machine disturbs less than the rates.
	var joinerCPU, cpuJoin, cpuAlone []float64
	window := 3 * time.Second // as long as the last join took
	before := jb.alone(window)
	for range b.N {
		jb.setRate(32 << 20)
		p := jb.join()
		window = p.took
		mid := jb.alone(window)
		jb.setRate(0)
		u := jb.join()
		window = u.took
		after := jb.alone(window)
		kp, ku := kept(p.commitsPerSec, before, mid), kept(u.commitsPerSec, mid, after)
		alone, keptP, keptU = append(alone, before.commitsPerSec), append(keptP, kp), append(keptU, ku)
		paced, pacedTook = append(paced, p.commitsPerSec), append(pacedTook, p.took.Seconds())
		unlimited, unlimitedTook = append(unlimited, u.commitsPerSec), append(unlimitedTook, u.took.Seconds())
		joinerCPU = append(joinerCPU, p.childCPU)
		cpuJoin, cpuAlone = append(cpuJoin, p.cpuPer1000()), append(cpuAlone, before.cpuPer1000)
		snaps = append(snaps, float64(p.snapshots), float64(u.snapshots))
		bytes = append(bytes, float64(p.bytes), float64(u.bytes))
		b.Logf("round: alone %.0f/s (%.2f cpu-s/1000, %s); paced join %.0f/s = %.0f%% in %v (%d snapshots, %d bytes; %.2f cpu-s/1000, joiner %.2f cpu-s [%s]: %s); alone %.0f/s (%.2f cpu-s/1000, %s); unlimited join %.0f/s = %.0f%% in %v (%d snapshots, %d bytes; %.2f cpu-s/1000, joiner %.2f cpu-s [%s]: %s); alone %.0f/s (%s)",
			before.commitsPerSec, before.cpuPer1000, before.syncs,
			p.commitsPerSec, kp, p.took.Round(time.Millisecond), p.snapshots, p.bytes, p.cpuPer1000(), p.childCPU, p.childPhases, p.phases,
			mid.commitsPerSec, mid.cpuPer1000, mid.syncs,
			u.commitsPerSec, ku, u.took.Round(time.Millisecond), u.snapshots, u.bytes, u.cpuPer1000(), u.childCPU, u.childPhases, u.phases,
			after.commitsPerSec, after.syncs)
		if os.Getenv("KVTOOL_JOIN_BENCH_BURN") != "" {
			burn := jb.burning(window)
			again := jb.alone(window)
			b.Logf("burn: alone %.0f/s (%s); beside a background process (%s) spinning on one core %.0f/s = %.0f%% (%s); alone %.0f/s (%s)",
				after.commitsPerSec, after.syncs, map[bool]string{true: "SCHED_IDLE", false: "nice 19"}[os.Getenv("KVTOOL_JOIN_BENCH_BURN") == "idle"], burn.commitsPerSec, kept(burn.commitsPerSec, after, again), burn.syncs, again.commitsPerSec, again.syncs)
			after = again
		}
		before = after
	}
	b.ReportMetric(medianF(alone), "puts/s-alone")
	b.ReportMetric(medianF(paced), "puts/s-join-32MiB/s")
	b.ReportMetric(medianF(unlimited), "puts/s-join-unlimited")
	b.ReportMetric(medianF(keptP), "%-kept")
	b.ReportMetric(slices.Min(keptP), "%-kept-min")
	b.ReportMetric(slices.Max(keptP), "%-kept-max")
	b.ReportMetric(medianF(keptU), "%-kept-unlimited")
	b.ReportMetric(medianF(pacedTook), "s-to-promotion")
	b.ReportMetric(medianF(unlimitedTook), "s-to-promotion-unlimited")
	// The CPU a paced join costs, which the kept rate hides on a shared
	// machine: the joiner's process in all, and this process's (the
	// founders') per 1000 commits during the join and alone before it.
	b.ReportMetric(medianF(joinerCPU), "joiner-cpu-s")
	b.ReportMetric(medianF(cpuJoin), "cpu-s/1000-join")
	b.ReportMetric(medianF(cpuAlone), "cpu-s/1000-alone")
	b.ReportMetric(medianF(snaps), "snapshots/join")
	b.ReportMetric(medianF(bytes)/1e6, "MB/snapshot")
	b.ReportMetric(0, "ns/op")
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
