package drill

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/internal/loopport"
)

// The cluster drills: three real `kvtool serve --node` processes whose
// peer links run through the drill's proxies (proxy.go), the bank load
// spread over the members, one node killed (SIGKILL) or partitioned (every
// link to and from it cut while its process runs), then restarted or
// healed; the drill times the election and the first commit after the
// fault, waits for the node to catch up, and proves every acknowledged
// transfer present exactly once on every node, every node's state hash
// the same at the same applied index, and every data directory verify
// clean.

var followerLoss = Drill{
	Name:        "follower-loss",
	Description: "SIGKILL a follower of a 3-node cluster under bank load, time the first commit without it, restart it, check it catches up to the same state hash",
	Cluster:     true,
	Run:         func(ctx context.Context, env *Env) Result { return runCluster(ctx, env, faultKillFollower) },
}

var leaderLoss = Drill{
	Name:        "leader-loss",
	Description: "SIGKILL the leader of a 3-node cluster under bank load, time the new election and first commit, restart it, check it catches up to the same state hash",
	Cluster:     true,
	Run:         func(ctx context.Context, env *Env) Result { return runCluster(ctx, env, faultKillLeader) },
}

var partition = Drill{
	Name:        "partition",
	Description: "cut every peer link of a 3-node cluster's leader (its process keeps running and taking writes), time the new election and first commit, heal, check it catches up",
	Cluster:     true,
	Run:         func(ctx context.Context, env *Env) Result { return runCluster(ctx, env, faultPartitionLeader) },
}

type clusterFault int

const (
	faultKillFollower clusterFault = iota
	faultKillLeader
	faultPartitionLeader
)

// clusterTimeout bounds each wait of a cluster drill: an election, a
// first commit, a catch-up, the nodes converging.
const clusterTimeout = 30 * time.Second

// clusterNode is one member of a drill's cluster.
type clusterNode struct {
	name, data, peer string
	// join is the API address of the member a joining node (hot-join,
	// replace-node) asked to add it; empty for a founding member.
	join string
	// advertise, if set, is the peer address the node tells the cluster
	// (--advertise-peer): a drill link in front of its real peer listener.
	advertise string
	// extra are flags added to the node's serve command line.
	extra  []string
	starts int
	srv    *server // nil while it is down
}

// testCluster is a drill's three nodes and the network between them.
type testCluster struct {
	env    *Env
	names  []string
	nodes  map[string]*clusterNode
	net    *network
	secret string
	// extra are flags added to every founding member's serve command line.
	extra []string

	mu sync.Mutex // guards nodes (a member joins) and each node's srv, for the load's workers
}

// newCluster picks the nodes' peer ports and builds the links; it starts
// nothing.
func newCluster(env *Env, rng *rand.Rand) (*testCluster, error) {
	c := &testCluster{env: env, names: []string{"n1", "n2", "n3"}, nodes: map[string]*clusterNode{}}
	peer := map[string]string{}
	for _, name := range c.names {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return nil, fmt.Errorf("pick a peer port for %s: %w", name, err)
		}
		peer[name] = addr
		c.nodes[name] = &clusterNode{name: name, data: filepath.Join(env.Dir, name, "data"), peer: addr}
	}
	var err error
	if c.net, err = newNetwork(c.names, peer); err != nil {
		return nil, err
	}
	key := make([]byte, 24)
	for i := range key {
		key[i] = byte(rng.Uint32())
	}
	c.secret = hex.EncodeToString(key)
	return c, nil
}

// freeLoopbackAddr returns a loopback address nothing listens on now,
// below the ephemeral port range (loopport). A node's peer port must be
// known before it starts (the others' links forward to it) and stay the
// same across its restart.
func freeLoopbackAddr() (string, error) {
	return loopport.Free()
}

// start starts node name's process (again).
func (c *testCluster) start(ctx context.Context, name string) error {
	logPath, args, err := c.prepare(name)
	if err != nil {
		return err
	}
	srv, err := startServerEnv(ctx, c.env.Exe, c.nodes[name].data, logPath, []string{"KVTOOL_SECRET=" + c.secret}, args...)
	if err != nil {
		return fmt.Errorf("start node %s: %w", name, err)
	}
	c.mu.Lock()
	c.nodes[name].srv = srv
	c.mu.Unlock()
	return nil
}

// prepare counts a start of node name and returns its log and its flags.
func (c *testCluster) prepare(name string) (logPath string, args []string, err error) {
	n := c.nodes[name]
	n.starts++
	logPath = filepath.Join(c.env.Dir, name, fmt.Sprintf("serve-%d.log", n.starts))
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return "", nil, fmt.Errorf("start node %s: %w", name, err)
	}
	args = []string{"--segment-size", "256KiB", "--node", name, "--peer-listen", n.peer}
	if n.join != "" {
		args = append(args, "--join-cluster", n.join)
	} else {
		args = append(args, "--cluster", c.net.clusterMap(name, c.founders(), c.peerAddrs()))
		args = append(args, c.extra...)
	}
	if n.advertise != "" {
		args = append(args, "--advertise-peer", n.advertise)
	}
	args = append(args, n.extra...)
	return logPath, args, nil
}

// founders lists the founding members (those the network has links for),
// whatever joined or left since.
func (c *testCluster) founders() []string {
	var names []string
	for name, n := range c.nodes {
		if n.join == "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func (c *testCluster) peerAddrs() map[string]string {
	m := map[string]string{}
	for name, n := range c.nodes {
		m[name] = n.peer
	}
	return m
}

// startAll starts the three nodes at once: none can elect a leader alone.
func (c *testCluster) startAll(ctx context.Context) error {
	errs := make([]error, len(c.names))
	var wg sync.WaitGroup
	for i, name := range c.names {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.start(ctx, name) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// kill SIGKILLs node name.
func (c *testCluster) kill(name string) {
	c.mu.Lock()
	srv := c.nodes[name].srv
	c.nodes[name].srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.kill()
	}
}

// client returns node name's client, or nil while it is down.
func (c *testCluster) client(name string) *client.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if srv := c.nodes[name].srv; srv != nil && srv.alive() {
		return srv.c
	}
	return nil
}

// stopAll stops every running node with SIGTERM.
func (c *testCluster) stopAll() error {
	var first error
	for _, name := range c.names {
		c.mu.Lock()
		srv := c.nodes[name].srv
		c.nodes[name].srv = nil
		c.mu.Unlock()
		if srv == nil {
			continue
		}
		if err := srv.stop(stopTimeout); err != nil && first == nil {
			first = fmt.Errorf("node %s: %w", name, err)
		}
	}
	return first
}

// close kills whatever still runs and closes the links.
func (c *testCluster) close() {
	for _, name := range c.names {
		c.kill(name)
	}
	c.net.Close()
}

// leaderAmong polls the members named until one of them says it leads
// (and is not notName), and returns its name.
func (c *testCluster) leaderAmong(ctx context.Context, names []string, notName string) (string, error) {
	var leader string
	ok := waitFor(ctx, clusterTimeout, func() bool {
		for _, name := range names {
			cl := c.client(name)
			if cl == nil {
				continue
			}
			st, err := cl.LocalClusterStatus(ctx)
			if err == nil && st.Role == "leader" && name != notName {
				leader = name
				return true
			}
		}
		return false
	})
	if !ok {
		return "", fmt.Errorf("none of %v became the leader within %v", names, clusterTimeout)
	}
	return leader, nil
}

// clusterLoad drives the bank over the members: each worker sends to one
// member, and tells when the first transfer begun after a fault is
// acknowledged.
type clusterLoad struct {
	bank *Bank
	c    *testCluster

	mu         sync.Mutex
	faultAt    time.Time // zero until the fault
	firstAfter time.Time // the acknowledgement of the first transfer begun after faultAt
}

// run drives workers goroutines against the members named, until ctx ends.
func (l *clusterLoad) run(ctx context.Context, targets []string, workers int, seed uint64) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			name := targets[w%len(targets)]
			for ctx.Err() == nil {
				cl := l.c.client(name)
				if cl == nil {
					sleep(ctx, 20*time.Millisecond) // its node is down
					continue
				}
				t0 := time.Now()
				out, _ := l.bank.Attempt(ctx, ServerTarget{cl}, rng)
				switch out {
				case Acked:
					l.acked(t0, time.Now())
				case Unknown:
					sleep(ctx, 10*time.Millisecond) // do not spin on a refusing node
				}
			}
		}()
	}
	wg.Wait()
}

func (l *clusterLoad) acked(began, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.faultAt.IsZero() && began.After(l.faultAt) && l.firstAfter.IsZero() {
		l.firstAfter = at
	}
}

func (l *clusterLoad) fault(at time.Time) {
	l.mu.Lock()
	l.faultAt = at
	l.mu.Unlock()
}

func (l *clusterLoad) firstCommit() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstAfter
}

// without returns names less name.
func without(names []string, name string) []string {
	var out []string
	for _, n := range names {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}
