package node

import (
	"context"
	"errors"
	"time"

	"github.com/kvtool/kvtool/client"
)

// Part names a part of a node in errors.
type Part string

// The parts of a node.
const (
	PartAPI       Part = "HTTP API"          // the API's listener, or serving it
	PartTransfers Part = "transfer listener" // --transfer-listen
	PartStore     Part = "store"             // opening or closing the store
	PartJoin      Part = "join"              // a join that retrying cannot mend
	PartPeers     Part = "peer listener"     // --peer-listen
	PartCluster   Part = "cluster member"    // starting the member, or a member that failed (fail stop)
	PartDebug     Part = "debug listener"    // --debug-listen (profiles)
)

// ErrBadConfig is returned (wrapped) by Run for a Config it cannot run:
// Join with Cluster, a member not named among the members, a wildcard API
// address without ClusterConfig.AdvertiseAPI.
var ErrBadConfig = errors.New("kvtool/node: bad configuration")

// What a part was doing when it failed (Error.Op).
const (
	OpListen = "listen" // binding its listener
	OpOpen   = "open"   // opening the store
	OpServe  = "serve"  // serving, or following a source
	OpClose  = "close"  // closing the store
)

// Error is the failure of one part of a node.
type Error struct {
	Part Part
	Op   string // OpListen, OpOpen, OpServe or OpClose
	Addr string // the address a listener could not bind, or the source of a join
	Err  error
}

func (e *Error) Error() string { return "kvtool/node: " + string(e.Part) + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func partError(p Part, op, addr string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Part: p, Op: op, Addr: addr, Err: err}
}

// describeTimeout bounds DescribePeer.
const describeTimeout = 3 * time.Second

// WrongPeerError is a join whose source address is not a kvtool transfer
// port (the source's HTTP API, say): retrying cannot help.
type WrongPeerError struct {
	Addr string
	What string // what answers there, as DescribePeer says
}

func (e *WrongPeerError) Error() string {
	return e.What + "; a join needs the source's transfer listener (serve --transfer-listen)"
}

// DescribePeer says what answers at addr, for a peer that did not speak
// the kvtool transfer protocol: a kvtool HTTP API, another HTTP server, or
// something else. It asks over HTTP, for at most a few seconds.
func DescribePeer(ctx context.Context, addr string) string {
	ctx, cancel := context.WithTimeout(ctx, describeTimeout)
	defer cancel()
	c := client.New(addr)
	defer c.Close()
	_, err := c.Status(ctx)
	var nk *client.NotKvtoolError
	switch {
	case err == nil:
		return addr + " is a kvtool HTTP API (kvtool serve --listen)"
	case errors.As(err, &nk) && nk.Status != 0:
		return addr + " is an HTTP server, not kvtool (" + nk.What + ")"
	}
	return addr + " does not speak the kvtool transfer protocol"
}
