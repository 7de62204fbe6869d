package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/kvtool/kvtool/api"
)

// ErrNotCluster is wrapped when the server is not a cluster member (a
// single node answers 404 to the cluster endpoints).
var ErrNotCluster = errors.New("kvtool/client: the server is not a cluster member")

// ClusterStatus returns the cluster as the member at the client's address
// sees it, with every other member asked for its role and applied index
// (GET /v1/cluster).
func (c *Client) ClusterStatus(ctx context.Context) (*api.ClusterStatus, error) {
	return c.clusterStatus(ctx, "/v1/cluster")
}

// LocalClusterStatus returns the member's own view, asking nobody else
// (GET /v1/cluster?local=true).
func (c *Client) LocalClusterStatus(ctx context.Context) (*api.ClusterStatus, error) {
	return c.clusterStatus(ctx, "/v1/cluster?local=true")
}

func (c *Client) clusterStatus(ctx context.Context, path string) (*api.ClusterStatus, error) {
	var st api.ClusterStatus
	if err := notCluster(c.getJSON(ctx, path, &st)); err != nil {
		return nil, err
	}
	return &st, nil
}

// TransferLeader asks the cluster to make member to (a name or an ID) its
// leader, and returns once the member at the client's address sees it
// lead. No quorum in time is an *Error with Status 503.
func (c *Client) TransferLeader(ctx context.Context, to string) (*api.TransferLeaderResult, error) {
	body, err := json.Marshal(api.TransferLeaderRequest{To: to})
	if err != nil {
		return nil, err
	}
	var res api.TransferLeaderResult
	err = c.doJSON(ctx, http.MethodPost, "/v1/cluster/transfer-leader", bytes.NewReader(body), "application/json", &res)
	if err := notCluster(err); err != nil {
		return nil, err
	}
	return &res, nil
}

// notCluster turns a 404 from a cluster endpoint into ErrNotCluster.
func notCluster(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return fmt.Errorf("%w: %s", ErrNotCluster, e.Message)
	}
	return err
}
