package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// ErrNothingToDo is matched (errors.Is) by the error of a maintenance
// request the server had nothing to do for (HTTP 409): no change since the
// last snapshot, no delta to merge. The store is unchanged.
var ErrNothingToDo = errors.New("kvtool/client: nothing to do")

// CheckpointResult is the answer of POST /v1/admin/checkpoint and
// /v1/admin/merge: the checkpoint written, now the manifest's base.
type CheckpointResult struct {
	Name      string `json:"name"`
	Path      string `json:"path"` // on the server
	Index     uint64 `json:"index"`
	Term      uint64 `json:"term"`
	Keys      uint64 `json:"keys"`
	Blocks    int    `json:"blocks"`
	Size      int64  `json:"size"`
	StateHash string `json:"state_hash"` // 16 hex digits
	Checksum  string `json:"checksum"`   // whole-file checksum, 16 hex digits
}

// DeltaResult is the answer of POST /v1/admin/delta: the delta written,
// now the end of the manifest's chain.
type DeltaResult struct {
	Name       string `json:"name"`
	Path       string `json:"path"` // on the server
	FromIndex  uint64 `json:"from_index"`
	ToIndex    uint64 `json:"to_index"`
	Term       uint64 `json:"term"`
	Parent     string `json:"parent"` // the base or previous delta it builds on
	Keys       uint64 `json:"keys"`   // keys changed: puts plus tombstones
	Puts       uint64 `json:"puts"`
	Tombstones uint64 `json:"tombstones"`
	Blocks     int    `json:"blocks"`
	Size       int64  `json:"size"`
	Checksum   string `json:"checksum"` // whole-file checksum, 16 hex digits
}

// CompactResult is the answer of POST /v1/admin/compact.
type CompactResult struct {
	// Checkpoint is the checkpoint written; nil when the state was already
	// checkpointed at the applied index.
	Checkpoint      *CheckpointResult `json:"checkpoint"`
	WALFirstIndex   uint64            `json:"wal_first_index"`  // first WAL index the manifest still needs
	DroppedSegments []string          `json:"dropped_segments"` // WAL segments removed
	RemovedFiles    []string          `json:"removed_files"`    // checkpoints, deltas and temp files removed
}

// Checkpoint writes a checkpoint of the server's current state and makes it
// the base (the delta chain is folded away).
func (c *Client) Checkpoint(ctx context.Context) (*CheckpointResult, error) {
	var r CheckpointResult
	return &r, c.admin(ctx, "checkpoint", &r)
}

// Delta writes a delta of the keys changed since the last base or delta.
func (c *Client) Delta(ctx context.Context) (*DeltaResult, error) {
	var r DeltaResult
	return &r, c.admin(ctx, "delta", &r)
}

// Merge folds the base and its deltas into a new base checkpoint.
func (c *Client) Merge(ctx context.Context) (*CheckpointResult, error) {
	var r CheckpointResult
	return &r, c.admin(ctx, "merge", &r)
}

// Compact checkpoints the state and drops the WAL segments and snapshot
// files the manifest no longer needs.
func (c *Client) Compact(ctx context.Context) (*CompactResult, error) {
	var r CompactResult
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
