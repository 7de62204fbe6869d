package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/kvtool/kvtool/api"
)

// ErrNothingToDo is matched (errors.Is) by the error of a maintenance
// request the server had nothing to do for (HTTP 409): no change since the
// last snapshot, no delta to merge. The store is unchanged.
var ErrNothingToDo = errors.New("kvtool/client: nothing to do")

// Checkpoint writes a checkpoint of the server's current state and makes it
// the base (the delta chain is folded away).
func (c *Client) Checkpoint(ctx context.Context) (*api.CheckpointResult, error) {
	var r api.CheckpointResult
	return &r, c.admin(ctx, "checkpoint", &r)
}

// Delta writes a delta of the keys changed since the last base or delta.
func (c *Client) Delta(ctx context.Context) (*api.DeltaResult, error) {
	var r api.DeltaResult
	return &r, c.admin(ctx, "delta", &r)
}

// Merge folds the base and its deltas into a new base checkpoint.
func (c *Client) Merge(ctx context.Context) (*api.CheckpointResult, error) {
	var r api.CheckpointResult
	return &r, c.admin(ctx, "merge", &r)
}

// Compact checkpoints the state and drops the WAL segments and snapshot
// files the manifest no longer needs.
func (c *Client) Compact(ctx context.Context) (*api.CompactResult, error) {
	var r api.CompactResult
	return &r, c.admin(ctx, "compact", &r)
}

// admin posts to /v1/admin/<what>; a 409 answer wraps ErrNothingToDo.
func (c *Client) admin(ctx context.Context, what string, v any) error {
	err := c.doJSON(ctx, http.MethodPost, "/v1/admin/"+what, nil, "", v)
	var ce *Error
	if errors.As(err, &ce) && ce.Status == http.StatusConflict {
		return fmt.Errorf("%w: %s", ErrNothingToDo, ce.Message)
	}
	return err
}
