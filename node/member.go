package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/kvtool/kvtool/cluster"
)

// checkCluster refuses a cluster configuration Run cannot run, before
// anything is bound or opened.
func checkCluster(cfg *Config) error {
	c := cfg.Cluster
	if c == nil {
		return nil
	}
	if cfg.Join != "" {
		return fmt.Errorf("%w: a cluster member cannot also join a source as a read replica (Join with Cluster)", ErrBadConfig)
	}
	if c.JoinCluster != "" {
		if c.PeerListen == "" {
			return fmt.Errorf("%w: a member joining a cluster needs its peer listener's address (PeerListen, --peer-listen)", ErrBadConfig)
		}
	} else if _, ok := c.Members[c.Name]; !ok {
		return fmt.Errorf("%w: member %q is not one of the cluster's members %v", ErrBadConfig, c.Name, slices.Sorted(maps.Keys(c.Members)))
	}
	if c.AdvertiseAPI != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("%w: API address %q: %v", ErrBadConfig, cfg.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%w: the API listens on %s, an address other members cannot reach: give the address they should use (AdvertiseAPI, --advertise-api HOST:PORT)", ErrBadConfig, cfg.Listen)
	}
	return nil
}

// bindPeers binds the cluster member's peer listener.
func (n *node) bindPeers() error {
	addr := n.cfg.Cluster.peerListen()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return partError(PartPeers, OpListen, addr, err)
	}
	n.peerLn = ln
	return nil
}

// startMember starts the cluster member on the open store; the member
// owns the peer listener from then on, also if it fails to start.
func (n *node) startMember() error {
	c := n.cfg.Cluster
	api := c.AdvertiseAPI
	if api == "" {
		api = n.apiAddr()
	}
	rc := c.Raft
	rc.FS, rc.Dir, rc.Store = n.cfg.FS, n.st.Dir(), n.st
	if rc.SnapshotRate == 0 {
		rc.SnapshotRate = n.cfg.TransferMaxRate // --transfer-max-rate paces raft snapshots too
	}
	var join *cluster.JoinRecord
	if c.JoinCluster != "" {
		j, err := n.joinRecord(context.Background())
		if err != nil {
			return partError(PartJoin, OpOpen, c.JoinCluster, err)
		}
		join = j
	}
	ln := n.peerLn
	n.peerLn = nil
	m, err := cluster.StartMember(cluster.MemberConfig{Name: c.Name, Members: c.Members, PeerListener: ln,
		APIAddr: api, Secret: c.Secret, TLS: c.TLS, Token: c.Token, Node: rc, Join: join})
	if err != nil {
		return partError(PartCluster, OpOpen, ln.Addr().String(), err)
	}
	n.member, n.memberJoin = m, join
	return nil
}

// watchMember returns, in g, an error once the member stopped on its own
// (fail stop: its disk failed), which stops the node; nil once ctx ends.
func (n *node) watchMember(ctx context.Context, g *errgroup.Group) {
	m := n.member
	g.Go(func() error {
		select {
		case <-ctx.Done():
			return nil
		case <-m.Done():
		}
		err := m.Err()
		if err == nil {
			err = cluster.ErrStopped
		}
		if errors.Is(err, cluster.ErrRemoved) {
			return partError(PartCluster, OpServe, "", fmt.Errorf("member %s stopped: %w", m.Name(), err))
		}
		return partError(PartCluster, OpServe, "", fmt.Errorf("member %s stopped: %w; the node stops too (restart it: it recovers from what is durable)", m.Name(), err))
	})
}

// closeMember stops the member (raft, its transport and peer listener),
// if it runs.
func (n *node) closeMember() error {
	if n.member == nil {
		return nil
	}
	err := n.member.Close()
	n.member = nil
	return err
}
