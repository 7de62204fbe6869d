package node

import (
	"crypto/tls"
	"io"
	"log/slog"
	"time"

	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/vfs"
)

// Config describes one node. Zero values take the defaults noted.
type Config struct {
	// FS is the file system of the data directory; default vfs.Default.
	FS vfs.FS
	// Dir is the data directory. A store is created there if it holds
	// none: the caller decides whether that may happen (a missing or
	// empty directory), Run creates where it is told.
	Dir string
	// Shards is the shard count of a new store; 0: store.DefaultShards.
	// An existing store keeps its own (a different count is logged).
	Shards int
	// SegmentSize is the WAL rotation threshold; 0: the directory's own.
	SegmentSize int64
	// Maintenance says when deltas, merges and compactions run on their
	// own; its Running field is the node's.
	Maintenance store.MaintenancePolicy
	// MaintenanceRate bounds the bytes per second maintenance writes; 0:
	// full speed.
	MaintenanceRate int64
	// MaintenanceShare bounds the share of the wall time maintenance works
	// (store.Options.MaintenanceShare; 0: the store's default).
	MaintenanceShare float64

	// Listen is the HTTP API's HOST:PORT (port 0: any free port).
	Listen string
	// ShutdownTimeout bounds how long requests in flight may finish;
	// default server.DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Logger receives the node's logs; default: discard.
	Logger *slog.Logger
	// DebugListen, if set, is the HOST:PORT of a listener serving Go's
	// profiles (net/http/pprof) under /debug/pprof/. They expose the
	// process's memory and cost CPU: the caller keeps it on a loopback
	// address unless told otherwise (serve --debug-listen).
	DebugListen string

	// TransferListen, if set, is the HOST:PORT where nodes joining this
	// one connect for its snapshot and log (kvtool serve --join).
	TransferListen string
	// TransferTLS, if set, makes the transfer listener speak TLS.
	TransferTLS *tls.Config
	// DialTLS, if set, is the TLS of connections this node opens to
	// transfer peers: its join, and sends started over the API.
	DialTLS *tls.Config
	// Secret is the shared secret of transfer peers; zero: this node
	// sends no snapshot (and cannot join).
	Secret transfer.Secret
	// TransferMaxRate bounds the bytes per second of each send, a cluster
	// member's raft snapshots included (unless Cluster.Raft.SnapshotRate
	// is set); 0: none.
	TransferMaxRate int64
	// Join, if set, is the transfer listener of a source: the node
	// receives its snapshot, cuts over, and then follows its log as a
	// read replica, reconnecting as needed.
	Join string

	// Events report what the node does to its caller.
	Events Events

	// Cluster, if set, runs the node as a member of a cluster (kvtool
	// serve --node --cluster); nil runs a single node (or a replica, with
	// Join). Join and Cluster exclude each other.
	Cluster *ClusterConfig
}

// ClusterConfig is a node's part in a founding cluster (DESIGN.md
// "Cluster"; cluster.StartMember): Run opens the store as a replica, binds
// the peer listener after the API's (and the transfer listener's), starts
// the member between the store and the API (the API's writes go through
// raft), and stops them in reverse: the API, the member (its transport and
// peer listener), the store. A member that fails (its disk, say) stops the
// node: Run returns an *Error with PartCluster (fail stop).
type ClusterConfig struct {
	// Name is this member's name (--node); it must be in Members.
	Name string
	// Members maps every founding member's name to its peer address
	// (--cluster, cluster.ParseMembers), this member included.
	Members map[string]string
	// PeerListen is the peer listener's HOST:PORT (--peer-listen); "":
	// this member's address in Members.
	PeerListen string
	// AdvertiseAPI is the HTTP API address told to the other members;
	// "": the bound API address, which must then name a host (a wildcard
	// listen address such as 0.0.0.0:7070 is refused without it).
	AdvertiseAPI string
	// AdvertisePeer is the peer address told to the other members, the
	// one they dial to reach this member (a proxy, a NAT's outside
	// address); "": the bound peer listener's address (its host, unless
	// a wildcard). A joining member sends it in its add request; a
	// founding member's is its address in Members.
	AdvertisePeer string
	// Secret is the shared secret of the members, at least
	// cluster.MinSecretSize bytes.
	Secret []byte
	// Token (--cluster-token) goes into a new cluster's ID, telling it
	// apart from another whose members have the same names.
	Token string
	// TLS, if set, is the members' mutual TLS (cluster.TCPConfig.TLS).
	TLS *tls.Config
	// Raft tunes the member (tick, election timeout, log segment size);
	// its identity, peers, store and transport are set by Run.
	Raft cluster.Config
	// JoinCluster, if set, is the HTTP API of any member of a running
	// cluster (serve --join-cluster): Members is not used; the node asks
	// that member to add it as a learner (signed with Secret), records
	// its identity and the members in raft/JOIN, starts raft on its empty
	// store, and catches up; it answers 503 "syncing" until it has
	// applied what the cluster had committed when it was added. A
	// restart reads raft/JOIN and is not added again.
	JoinCluster string
	// Learner keeps a joining member a learner (serve --learner): a read
	// replica the leader does not promote.
	Learner bool
}

// peerListen is the address the peer listener binds.
func (c *ClusterConfig) peerListen() string {
	if c.PeerListen != "" || c.JoinCluster != "" {
		return c.PeerListen
	}
	return c.Members[c.Name]
}

// Events are what a node reports to its caller while it runs. Each is
// optional, called from one of the node's goroutines and never under one
// of its locks.
type Events struct {
	// Listening is called once every listener is bound and the store
	// opened (a joining node opens its store only once complete: its
	// store fields are zero until then), before anything is served. An
	// error it returns stops the node: Run returns it as is.
	Listening func(Listening) error
	// JoinProgress reports a join's snapshot transfer, until cutover.
	JoinProgress func(transfer.Progress)
	// CutOver is called once a joining node's store is complete and its
	// API serves it.
	CutOver func()
	// Stopped is called once the node stopped cleanly, with the index its
	// store stood at (0 for a join that never cut over).
	Stopped func(appliedIndex uint64)
}

// Listening is what Events.Listening reports.
type Listening struct {
	APIAddr      string // the HTTP API's bound address
	TransferAddr string // the transfer listener's, "" without one
	PeerAddr     string // a cluster member's peer listener's, "" for others
	DebugAddr    string // the debug (pprof) listener's, "" without one
	Node         string // a cluster member's name, "" for others
	DataDir      string
	Join         string // the source joined; "" for a node that is not joining
	// The store, once open.
	StoreID      string
	AppliedIndex uint64
	Shards       int
}

func (c *Config) fill() {
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = server.DefaultShutdownTimeout
	}
}

func (c *Config) shards() int {
	if c.Shards <= 0 {
		return store.DefaultShards
	}
	return c.Shards
}
