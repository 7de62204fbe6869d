package main

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/node"
	xfer "github.com/kvtool/kvtool/transfer"
)

// clusterServeFlags are the flags serve takes for a cluster member.
func clusterServeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "node", Usage: "run as the cluster member called `NAME` (one of --cluster)"},
		&cli.StringFlag{Name: "cluster", Usage: "the founding members and their peer addresses: `n1=HOST:PORT,n2=HOST:PORT,...` (this member included; the same on every member)"},
		&cli.StringFlag{Name: "cluster-token", Usage: "with --cluster, when the cluster is bootstrapped: a `TOKEN` that goes into the new cluster's ID, so that another cluster whose members have the same names (and secret) is a stranger to this one; the same on every founding member, ignored once a member recorded its cluster's ID"},
		&cli.StringFlag{Name: "peer-listen", Usage: "accept the other members' raft messages on `HOST:PORT` (default: this member's address in --cluster)"},
		&cli.StringFlag{Name: "advertise-peer", Usage: "the `HOST:PORT` the other members dial to reach this member's peer listener, when it is not the --peer-listen address: behind NAT or a TCP proxy, or with a wildcard --peer-listen such as 0.0.0.0:7080 (a joiner sends it in its add request, and the cluster records and shows it; a founding member's must be its address in --cluster)"},
		&cli.StringFlag{Name: "advertise-api", Usage: "the `HOST:PORT` other members and `kvtool cluster status` reach this member's HTTP API at (default: the --listen address; required when --listen is a wildcard such as 0.0.0.0)"},
		&cli.StringFlag{Name: "peer-tls-cert", Usage: "mutual TLS between members: this member's certificate `FILE` (PEM)"},
		&cli.StringFlag{Name: "peer-tls-key", Usage: "mutual TLS between members: the private key `FILE` (PEM) of --peer-tls-cert"},
		&cli.StringFlag{Name: "peer-tls-ca", Usage: "mutual TLS between members: the CA certificates `FILE` (PEM) every member's certificate chains to"},
		&cli.StringFlag{Name: "join-cluster", Usage: "join a running cluster through the HTTP API of any of its members, `HOST:PORT` (with --node and --peer-listen, without --cluster)"},
		&cli.BoolFlag{Name: "learner", Usage: "with --join-cluster: stay a learner (a read replica that does not vote); the leader does not promote it"},
		&cli.Uint64Flag{Name: "log-retain-entries", Value: cluster.DefaultRetainEntries, Usage: "keep at least `N` raft log entries behind the applied index when the log is compacted, so a member a little behind catches up from the log rather than by a snapshot"},
		&cli.DurationFlag{Name: "log-compact-every", Value: 10 * time.Second, Usage: "compact the raft log after the store's checkpoints every `DURATION`"},
		newSizeFlag("snapshot-chunk-size", "send snapshots to members behind the retained log (and to joiners) in chunks of `SIZE`", xfer.DefaultChunkSize),
		newSizeFlag("snapshot-window", "let a member sending this one a snapshot run at most `SIZE` ahead of what is durable here: what a cut connection may cost again", xfer.DefaultWindow),
		newSizeFlag("snapshot-max-rate", "send snapshots to other members at most `RATE` bytes per second (0: no limit)", 0),
	}
}

const serveClusterHelp = `Cluster: --node NAME --cluster n1=HOST:PORT,n2=HOST:PORT,n3=HOST:PORT runs
this node as one member of a cluster that replicates every write through
raft: a write (on any member) is answered once a quorum durably logged it
and this member applied it; reads are local (GET ?consistency=linearizable
asks the leader). The same command bootstraps a new cluster (every member's
--data empty) and restarts a member. --cluster lists every founding member's
peer address, this one's included, and is the same on every member; the
peer listener binds this member's address there unless --peer-listen says
otherwise (e.g. 0.0.0.0:7080). Members authenticate each other with the
shared secret (--secret-file or KVTOOL_SECRET, required) and, with
--peer-tls-cert/--peer-tls-key/--peer-tls-ca, mutual TLS. The cluster's ID
is derived from its members' names (addresses do not count: members may see
one another through proxies), so two clusters whose members have the same
names (n1, n2, n3) are told apart by their secrets, or by --cluster-token
TOKEN given to every founding member at bootstrap (as etcd's
--initial-cluster-token): give each cluster a secret or a token of its own. Other members
learn this member's API address from --listen, or from --advertise-api
(required if --listen is a wildcard address). A member whose disk fails
stops (exit 1); the others go on, and a restart recovers it.

Addresses: a member's peer address is the one the others dial. A founding
member's is its entry in --cluster (which may name a proxy or a NAT's
outside address: then bind with --peer-listen); a joining member's is
--advertise-peer if given, else its --peer-listen, and is recorded at the
join (a restart with another --advertise-peer keeps the recorded one).
Give --advertise-peer when the others cannot dial --peer-listen itself:
behind NAT or a TCP proxy, or when it is a wildcard address.

Joining: --node n4 --peer-listen HOST:PORT --join-cluster ANY_MEMBER_API
(no --cluster) starts a new member on an empty --data: it asks that member
(signed with the shared secret) to add it as a learner, records who it is
in DATA/raft/JOIN, catches up with the cluster's log, and answers 503
"syncing" (progress in /v1/status) until it has applied what the cluster
had committed when it was added; the leader then promotes it to a voter
(--learner keeps it a read replica). Restarting it with the same flags
resumes; it is not added twice. A member removed from the cluster
(kvtool cluster remove) stops, and its data directory refuses to start
again (DATA/raft/REMOVED) until wiped.`

// clusterServeOf checks serve's cluster flags into cfg.Cluster; without
// --node and --cluster it leaves cfg a single node.
func clusterServeOf(cCtx *cli.Context, cfg *node.Config) error {
	name, spec := cCtx.String("node"), cCtx.String("cluster")
	if via := cCtx.String("join-cluster"); via != "" {
		return joinClusterServeOf(cCtx, cfg, name, spec, via)
	}
	if cCtx.IsSet("learner") {
		return usageErrorf(cCtx, "--learner needs --join-cluster: a founding member (--cluster) is a voter")
	}
	switch {
	case name == "" && spec == "":
		for _, f := range append([]string{"peer-listen", "advertise-peer", "advertise-api", "peer-tls-cert", "peer-tls-key", "peer-tls-ca", "cluster-token"}, clusterTuningFlags...) {
			if cCtx.IsSet(f) {
				return usageErrorf(cCtx, "--%s needs --node NAME and --cluster n1=HOST:PORT,...", f)
			}
		}
		return nil
	case spec == "":
		return usageErrorf(cCtx, "--node %s needs --cluster n1=HOST:PORT,n2=HOST:PORT,... naming every member's peer address", name)
	case name == "":
		return usageErrorf(cCtx, "--cluster needs --node NAME: which of its members this is")
	case cCtx.IsSet("join"):
		return usageErrorf(cCtx, "--join starts a read replica of one node; a cluster member (--node/--cluster) cannot also be one")
	}
	members, err := cluster.ParseMembers(spec)
	if err != nil {
		return usageErrorf(cCtx, "--cluster: %v", err)
	}
	if _, ok := members[name]; !ok {
		return usageErrorf(cCtx, "--node %s is not one of --cluster's members %v", name, slices.Sorted(maps.Keys(members)))
	}
	c := &node.ClusterConfig{Name: name, Members: members, PeerListen: cCtx.String("peer-listen"), AdvertiseAPI: cCtx.String("advertise-api"),
		Token: cCtx.String("cluster-token")}
	if err := checkClusterAddrs(cCtx, c, cfg.Listen); err != nil {
		return err
	}
	// A founding member's peer address is what every member's --cluster
	// says: the others dial it, and it is what the member records show.
	if adv := cCtx.String("advertise-peer"); adv != "" && adv != members[name] {
		return usageErrorf(cCtx, "--advertise-peer %s differs from %s's address in --cluster (%s), which is what the other members dial: a founding member's peer address is its --cluster entry; put the address they should dial there, and bind another with --peer-listen", adv, name, members[name])
	}
	if err := clusterTuningOf(cCtx, c); err != nil {
		return err
	}
	if c.Secret, err = readSecret(cCtx); err != nil {
		return err
	}
	if len(c.Secret) < cluster.MinSecretSize {
		return usageErrorf(cCtx, "a cluster member needs the members' shared secret: give --secret-file FILE or set KVTOOL_SECRET, at least %d bytes, the same on every member (e.g. head -c 32 /dev/urandom | base64 > secret)", cluster.MinSecretSize)
	}
	if c.TLS, err = tlsConfigOf(cCtx, "peer-tls", true); err != nil {
		return err
	}
	if c.TLS != nil && c.TLS.ClientCAs == nil {
		return usageErrorf(cCtx, "peer TLS is mutual: give --peer-tls-ca with --peer-tls-cert and --peer-tls-key")
	}
	cfg.Cluster = c
	return nil
}

// joinClusterServeOf checks the flags of a member that joins a running
// cluster (--join-cluster) into cfg.Cluster.
func joinClusterServeOf(cCtx *cli.Context, cfg *node.Config, name, spec, via string) error {
	switch {
	case name == "":
		return usageErrorf(cCtx, "--join-cluster needs --node NAME: the new member's name")
	case spec != "":
		return usageErrorf(cCtx, "--join-cluster and --cluster exclude each other: a joining member learns the members from the cluster")
	case !cCtx.IsSet("peer-listen"):
		return usageErrorf(cCtx, "--join-cluster needs --peer-listen HOST:PORT: where the other members reach this one")
	case cCtx.IsSet("join"):
		return usageErrorf(cCtx, "--join starts a read replica of one node; --join-cluster joins a cluster: give one")
	case cCtx.IsSet("cluster-token"):
		return usageErrorf(cCtx, "--cluster-token is for the founding members (--cluster); a joining member learns the cluster's ID from the member it asks")
	}
	if err := cluster.CheckMemberName(name); err != nil {
		return usageErrorf(cCtx, "--node: %v", err)
	}
	if err := checkHostPort(cCtx, "join-cluster", via); err != nil {
		return err
	}
	c := &node.ClusterConfig{Name: name, JoinCluster: via, Learner: cCtx.Bool("learner"), PeerListen: cCtx.String("peer-listen"),
		AdvertiseAPI: cCtx.String("advertise-api"), AdvertisePeer: cCtx.String("advertise-peer")}
	if err := checkClusterAddrs(cCtx, c, cfg.Listen); err != nil {
		return err
	}
	if err := clusterTuningOf(cCtx, c); err != nil {
		return err
	}
	var err error
	if c.Secret, err = readSecret(cCtx); err != nil {
		return err
	}
	if len(c.Secret) < cluster.MinSecretSize {
		return usageErrorf(cCtx, "joining a cluster needs the members' shared secret: give --secret-file FILE or set KVTOOL_SECRET (the same as the members')")
	}
	if c.TLS, err = tlsConfigOf(cCtx, "peer-tls", true); err != nil {
		return err
	}
	cfg.Cluster = c
	return nil
}

// clusterTuningFlags are the flags clusterTuningOf reads.
var clusterTuningFlags = []string{"log-retain-entries", "log-compact-every", "snapshot-chunk-size", "snapshot-window", "snapshot-max-rate"}

// clusterTuningOf sets the member's raft log retention and snapshot
// transfer settings from their flags (defaults: the cluster package's).
func clusterTuningOf(cCtx *cli.Context, c *node.ClusterConfig) error {
	if cCtx.IsSet("log-compact-every") && cCtx.Duration("log-compact-every") <= 0 {
		return usageErrorf(cCtx, "--log-compact-every %v: want a positive duration", cCtx.Duration("log-compact-every"))
	}
	if cCtx.IsSet("log-retain-entries") && cCtx.Uint64("log-retain-entries") == 0 {
		return usageErrorf(cCtx, "--log-retain-entries 0: want at least 1 entry")
	}
	chunk := sizeFlag(cCtx, "snapshot-chunk-size")
	if chunk < format.MinXferChunk || chunk > format.MaxXferChunk {
		return usageErrorf(cCtx, "--snapshot-chunk-size %d: want %d to %d bytes", chunk, format.MinXferChunk, format.MaxXferChunk)
	}
	if w := sizeFlag(cCtx, "snapshot-window"); w < format.MinXferChunk {
		return usageErrorf(cCtx, "--snapshot-window %d: want at least %d bytes (a sender always has one chunk in flight, whatever the window)", w, format.MinXferChunk)
	}
	c.Raft.RetainEntries, c.Raft.CompactInterval = cCtx.Uint64("log-retain-entries"), cCtx.Duration("log-compact-every")
	c.Raft.SnapshotChunk, c.Raft.SnapshotWindow = int(chunk), sizeFlag(cCtx, "snapshot-window")
	c.Raft.SnapshotRate = sizeFlag(cCtx, "snapshot-max-rate")
	return nil
}

// checkClusterAddrs checks --peer-listen, --advertise-peer and
// --advertise-api, and that the other members can reach the API at the
// address told to them.
func checkClusterAddrs(cCtx *cli.Context, c *node.ClusterConfig, listen string) error {
	if c.PeerListen != "" {
		if err := checkHostPort(cCtx, "peer-listen", c.PeerListen); err != nil {
			return err
		}
	}
	if a := cCtx.String("advertise-peer"); a != "" {
		if err := checkHostPort(cCtx, "advertise-peer", a); err != nil {
			return err
		}
		host, port, _ := net.SplitHostPort(a)
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() || port == "0" {
			return usageErrorf(cCtx, "--advertise-peer %s is not an address the other members can dial: give a host and a port (e.g. proxy.example:7080)", a)
		}
	}
	if c.AdvertiseAPI != "" {
		return checkHostPort(cCtx, "advertise-api", c.AdvertiseAPI)
	}
	host, _, err := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); err == nil && (host == "" || ip != nil && ip.IsUnspecified()) {
		return usageErrorf(cCtx, "--listen %s is a wildcard address the other members cannot reach: give --advertise-api HOST:PORT, the address they should use", listen)
	}
	return nil
}

// clusterListenError explains a peer listener that could not bind.
func clusterListenError(ne *node.Error) error {
	return listenError("--peer-listen (default: this member's address in --cluster)", ne.Addr, ne.Err)
}

// memberError explains a member that failed to start or stopped (fail
// stop). Damage of its raft log or state exits 3, as a damaged store does.
func memberError(ne *node.Error, data string) error {
	if errors.Is(ne.Err, cluster.ErrRemoved) {
		return failed(ne.Err, "this member was removed from the cluster (kvtool cluster remove); to bring it back, wipe its --data and start it with --join-cluster")
	}
	if ne.Op == node.OpServe {
		return failed(ne.Err, "the member stopped to protect the data (fail stop); the other members go on: fix the cause (see the log) and start it again with the same flags")
	}
	if format.AsCorruption(ne.Err) != nil || errors.Is(ne.Err, cluster.ErrDamaged) {
		return damaged(fmt.Errorf("start the cluster member: %w", ne.Err), rebuildMemberHint(data))
	}
	return failed(fmt.Errorf("start the cluster member: %w", ne.Err), "check --data, --node and --cluster (the same on every member) and the shared secret")
}

// rebuildMemberHint says what to do with a member whose raft files are
// damaged: never cut or edit them (a quorum may have counted on its
// entries), rebuild it from its peers.
func rebuildMemberHint(data string) string {
	return "the member's raft files are damaged; do not cut or edit them (their entries may be what a quorum counted on): " +
		cmdline(data, "verify") + " lists every fault; then rebuild the member from its peers as the README's recovery section shows " +
		"(move the directory aside, kvtool serve --node NEW --join-cluster ANY_MEMBER_API --learner, kvtool cluster replace OLD NEW)"
}
