package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// MemberConfig is one member as `kvtool serve --node NAME --peer-listen
// ADDR --cluster SPEC` runs it: StartMember turns it into a TCP transport
// and a Node.
type MemberConfig struct {
	// Name is this member's name (--node); it must be in Members.
	Name string
	// Members maps every founding member's name to its peer address
	// (--cluster, see ParseMembers), this member included. Member IDs are
	// MemberID(name).
	Members map[string]string
	// PeerListener is this member's peer listener (--peer-listen); the
	// member closes it, also when StartMember fails.
	PeerListener net.Listener
	// APIAddr is the address clients reach this member's HTTP API at; it
	// is told to the peers, for `kvtool cluster status`.
	APIAddr string
	Secret  []byte      // the shared secret (KVTOOL_SECRET or --secret-file)
	TLS     *tls.Config // optional mutual TLS between members (see TCPConfig.TLS)
	// ClusterID is the cluster's ID. Zero: the one recorded in the data
	// directory's raft state, or for a new directory ClusterIDOf the
	// member names and Token.
	ClusterID uint64
	// Token (serve --cluster-token) tells apart clusters whose members
	// have the same names: it goes into the ID a new cluster derives, and
	// is ignored once a member recorded its cluster's ID.
	Token string
	// Join, if set, is the record of a member that joined a running
	// cluster (serve --join-cluster, see PrepareJoin): Members and
	// ClusterID come from it.
	Join *JoinRecord
	// Node is the rest of the node's configuration: Dir, Store (opened
	// with store.Options.Replica), FS and raft's tuning. StartMember sets
	// its ID, ClusterID, Peers and Transport.
	Node Config
}

// Member is a running cluster member: a Node over a TCP transport, which
// knows the members' names and addresses. It has every method of Node;
// its Status names the members and gives their peer and API addresses.
type Member struct {
	*Node
	tr     *TCPTransport
	name   string
	api    string
	secret []byte

	latest atomic.Pointer[Membership] // the last membership onMembership saw

	mu    sync.Mutex
	names map[uint64]string // members' names, by ID: founders', then the records'
	addrs map[uint64]string // members' peer addresses, by ID
}

// StoreWALSync is how often a member's store syncs its WAL
// (store.Options.WALSyncInterval): a crash makes the member apply up to
// that much again from its raft log, which holds every entry durably
// anyway. Every fsync costs this machine class 50-130 µs of CPU; at 10 ms
// a member's store made a quarter of its fsyncs under load (100/s beside
// the raft log's 250-400). etcd commits its backend every 100 ms for the
// same reason.
const StoreWALSync = 50 * time.Millisecond

// StartMember starts the transport and the node of cfg. Close the Member
// (it closes the transport and the listener), then the store. Wiring, as
// node/ does it:
//
//	members, err := cluster.ParseMembers(clusterFlag)      // --cluster n1=HOST:PORT,...
//	st, err  := store.Open(store.Options{Dir: dir, Create: true, Replica: true,
//	                WALSyncInterval: cluster.StoreWALSync, ...})
//	ln, err  := net.Listen("tcp", peerListen)             // --peer-listen
//	m, err   := cluster.StartMember(cluster.MemberConfig{Name: nodeFlag, Members: members,
//	                PeerListener: ln, APIAddr: apiAddr, Secret: secret, TLS: tlsConfig,
//	                Node: cluster.Config{Dir: dir, Store: st}})
//	h := server.New(st, server.Options{Cluster: m, ...})  // then server.Run on the API listener
//	// m.Done() closes if the member fails (fail stop): shut down, exit non-zero.
//	// shutdown: stop the API, then m.Close(), then st.Close()
func StartMember(cfg MemberConfig) (*Member, error) {
	m, err := newMember(&cfg)
	if err != nil {
		if cfg.PeerListener != nil {
			cfg.PeerListener.Close()
		}
		return nil, err
	}
	m.tr, err = NewTCPTransport(TCPConfig{
		ID: cfg.Node.ID, ClusterID: cfg.Node.ClusterID, Listener: cfg.PeerListener, Peers: peersOf(m.addrs, cfg.Node.ID),
		Secret: cfg.Secret, Name: cfg.Name, APIAddr: cfg.APIAddr, TLS: cfg.TLS,
	})
	if err != nil {
		cfg.PeerListener.Close()
		return nil, err
	}
	cfg.Node.Transport = m.tr
	if cfg.Node.Secret == nil {
		cfg.Node.Secret = cfg.Secret // snapshot transfers are authenticated with it too
	}
	cfg.Node.OnMembership = m.onMembership
	if m.Node, err = Start(cfg.Node); err != nil {
		m.tr.Close()
		return nil, err
	}
	return m, nil
}

// newMember checks cfg and fills in the node's identity and peers.
func newMember(cfg *MemberConfig) (*Member, error) {
	if cfg.PeerListener == nil {
		return nil, errors.New("kvtool/cluster: a member needs a peer listener (--peer-listen)")
	}
	if j := cfg.Join; j != nil {
		cfg.Members = map[string]string{j.Self.Name: j.Self.PeerAddr}
		for _, r := range j.Members {
			cfg.Members[r.Name] = r.PeerAddr
		}
		cfg.ClusterID, cfg.Node.Join = j.ClusterID, j
	}
	if _, ok := cfg.Members[cfg.Name]; !ok {
		return nil, fmt.Errorf("kvtool/cluster: member %q is not in the cluster's members %v (--node must name one of --cluster)", cfg.Name, slices.Sorted(maps.Keys(cfg.Members)))
	}
	m := &Member{name: cfg.Name, api: cfg.APIAddr, secret: cfg.Secret, names: map[uint64]string{}, addrs: map[uint64]string{}}
	for name, addr := range cfg.Members {
		id := MemberID(name)
		if other, ok := m.names[id]; ok {
			return nil, fmt.Errorf("kvtool/cluster: members %q and %q have the same ID %x: rename one", name, other, id)
		}
		m.names[id], m.addrs[id] = name, addr
	}
	cfg.Node.ID = MemberID(cfg.Name)
	cfg.Node.ClusterID = cfg.ClusterID
	if cfg.Node.ClusterID == 0 {
		id, err := recordedClusterID(&cfg.Node)
		if err != nil {
			return nil, err
		}
		cfg.Node.ClusterID = id
	}
	if cfg.Node.ClusterID == 0 {
		cfg.Node.ClusterID = ClusterIDOf(slices.Collect(maps.Keys(cfg.Members)), cfg.Token)
	}
	cfg.Node.Peers = slices.Sorted(maps.Keys(m.names))
	return m, nil
}

// recordedClusterID returns the cluster ID in the raft state of the node's
// data directory, or 0 if it has none yet.
func recordedClusterID(c *Config) (uint64, error) {
	c.setDefaults()
	st, err := loadState(c.FS, filepath.Join(c.Dir, RaftDir))
	if errors.Is(err, errNoState) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	return st.ClusterID, nil
}

func peersOf(addrs map[uint64]string, self uint64) map[uint64]string {
	out := map[uint64]string{}
	for id, a := range addrs {
		if id != self {
			out[id] = a
		}
	}
	return out
}

// Name is this member's name.
func (m *Member) Name() string { return m.name }

// Transport is the member's peer transport.
func (m *Member) Transport() *TCPTransport { return m.tr }

// Status is Node.Status with each member's name, peer and API addresses,
// the state of this member's link to it and the messages dropped on it.
// A member's API address is known once it has connected to this member.
func (m *Member) Status() Status {
	s := m.Node.Status()
	s.Name = m.name
	peers, _, _ := m.tr.Peers()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range s.Members {
		ms := &s.Members[i]
		ms.Name, ms.PeerAddr = m.names[ms.ID], m.addrs[ms.ID]
		if ms.Self {
			ms.Name, ms.APIAddr = m.name, m.api
			continue
		}
		p, ok := peers[ms.ID]
		if !ok {
			continue
		}
		ms.PeerAddr, ms.APIAddr, ms.Connected, ms.Dropped = p.Addr, p.APIAddr, p.Connected, p.Dropped
		if p.Name != "" {
			ms.Name = p.Name
		}
	}
	return s
}

// MemberID is the raft ID of the member called name: a hash of the name,
// never zero.
func MemberID(name string) uint64 {
	if id := xxhash.Sum64String("kvtool-member\x00" + name); id != 0 {
		return id
	}
	return 1
}

// ClusterIDOf is the cluster ID a cluster founded by the members called
// names gets with token: a hash of the sorted names (and of the token if
// not empty), never zero. Addresses do not count, so members may see one
// another at different addresses (proxies, NAT) and move; the token is
// what tells apart two clusters whose members have the same names.
func ClusterIDOf(names []string, token string) uint64 {
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	s := "kvtool-cluster\x00" + strings.Join(sorted, "\x00")
	if token != "" {
		s += "\x00\x00token\x00" + token
	}
	if id := xxhash.Sum64String(s); id != 0 {
		return id
	}
	return 1
}

// maxMemberName bounds a member's name.
const maxMemberName = 64

// ParseMembers parses a --cluster value, "n1=HOST:PORT,n2=HOST:PORT,...",
// into member names and peer addresses. Names are 1 to 64 letters,
// digits, '.', '_' or '-'; names and addresses must be distinct.
func ParseMembers(spec string) (map[string]string, error) {
	out := map[string]string{}
	seen := map[string]string{}
	for _, part := range strings.Split(spec, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("kvtool/cluster: member %q: want NAME=HOST:PORT (e.g. n1=127.0.0.1:7080)", part)
		}
		if err := checkMemberName(name); err != nil {
			return nil, err
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("kvtool/cluster: member %s: peer address %q: want HOST:PORT", name, addr)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("kvtool/cluster: member %s is named twice", name)
		}
		if other, dup := seen[addr]; dup {
			return nil, fmt.Errorf("kvtool/cluster: members %s and %s have the same peer address %s", other, name, addr)
		}
		out[name], seen[addr] = addr, name
	}
	return out, nil
}

// CheckMemberName checks a member's name: 1 to 64 letters, digits, '.',
// '_' or '-'.
func CheckMemberName(name string) error { return checkMemberName(name) }

func checkMemberName(name string) error {
	ok := len(name) >= 1 && len(name) <= maxMemberName
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("kvtool/cluster: member name %q: want 1 to %d letters, digits, '.', '_' or '-'", name, maxMemberName)
	}
	return nil
}

// onMembership updates what the member knows of the others from the
// applied membership: names and peer addresses from the records, peers of
// the transport added and removed. Founding members keep the addresses
// --cluster gave until a record says otherwise.
func (m *Member) onMembership(mem Membership) {
	m.latest.Store(&mem)
	m.mu.Lock()
	for id, r := range mem.Records {
		if mem.Has(id) {
			m.names[id], m.addrs[id] = r.Name, r.PeerAddr
		}
	}
	addrs := maps.Clone(m.addrs)
	m.mu.Unlock()
	for id, addr := range addrs {
		if mem.Has(id) {
			m.tr.AddPeer(id, addr)
		} else if mem.Index > 0 && len(mem.Conf.GetVoters()) > 0 {
			m.removeLater(id)
		}
	}
}

// removeLater drops peer id from the transport after a grace period
// longer than a farewell (farewell.go), if it is still not a member then:
// the leader's farewells to a removed member, and its answers, pass
// meanwhile.
func (m *Member) removeLater(id uint64) {
	grace := (farewellTimeouts + 1) * m.cfg.TickInterval * time.Duration(m.cfg.ElectionTicks)
	time.AfterFunc(grace, func() {
		if !m.latest.Load().Has(id) {
			m.tr.RemovePeer(id)
		}
	})
}

// Records returns a record of every member of the applied membership:
// its name, ID, and peer and API addresses as this member knows them (a
// member's record in the replicated state, else what --cluster and the
// peer links said).
func (m *Member) Records() []MemberRecord {
	mem := m.Membership()
	peers, _, _ := m.tr.Peers()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []MemberRecord
	cs := mem.Conf
	for _, id := range slices.Compact(slices.Sorted(slices.Values(slices.Concat(cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing(), cs.GetLearnersNext())))) {
		r, ok := mem.Records[id]
		if !ok {
			r = MemberRecord{Name: m.names[id], ID: id, PeerAddr: m.addrs[id]}
		}
		if a := peers[id].APIAddr; a != "" {
			r.APIAddr = a
		}
		if id == m.ID() {
			r.APIAddr = m.api
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b MemberRecord) int { return strings.Compare(a.Name, b.Name) })
	return out
}
