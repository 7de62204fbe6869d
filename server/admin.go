package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/delta"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
)

// The maintenance endpoints run on the live store: the store writes
// checkpoints and deltas from a frozen snapshot, so readers and writers
// keep going while they run; the store serializes maintenance itself.

// adminRoutes are the maintenance endpoints (POST /v1/admin/rotate is in
// status.go).
func (s *Server) adminRoutes() []route {
	return []route{
		{http.MethodPost, "/v1/admin/checkpoint", s.checkpoint},
		{http.MethodPost, "/v1/admin/compact", s.compact},
		{http.MethodPost, "/v1/admin/delta", s.delta},
		{http.MethodPost, "/v1/admin/merge", s.merge},
	}
}

func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request) {
	info, err := s.st.Checkpoint(r.Context())
	if err != nil {
		maintenanceError(w, "checkpoint", err)
		return
	}
	writeJSON(w, http.StatusOK, CheckpointResult(info))
}

func (s *Server) merge(w http.ResponseWriter, r *http.Request) {
	info, err := s.st.Merge(r.Context())
	if err != nil {
		maintenanceError(w, "merge", err)
		return
	}
	writeJSON(w, http.StatusOK, CheckpointResult(info))
}

func (s *Server) delta(w http.ResponseWriter, r *http.Request) {
	info, err := s.st.Delta(r.Context())
	if err != nil {
		maintenanceError(w, "delta", err)
		return
	}
	writeJSON(w, http.StatusOK, DeltaResult(info))
}

func (s *Server) compact(w http.ResponseWriter, r *http.Request) {
	res, err := s.st.Compact(r.Context())
	if err != nil {
		maintenanceError(w, "compact", err)
		return
	}
	writeJSON(w, http.StatusOK, CompactResult(res))
}

// maintenanceError answers a failed maintenance step: 409 when there was
// nothing to do or the store takes no maintenance (read-only), 503 when it
// is closing, 500 otherwise.
func maintenanceError(w http.ResponseWriter, what string, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, store.ErrNothingToDo), errors.Is(err, store.ErrReadOnly):
		status = http.StatusConflict
	case errors.Is(err, store.ErrClosed), errors.Is(err, segment.ErrClosed):
		status = http.StatusServiceUnavailable
	}
	writeError(w, status, what+": "+err.Error())
}

// CheckpointResult describes a checkpoint as POST /v1/admin/checkpoint does,
// so that a command working on a store it opened itself prints the same
// JSON.
func CheckpointResult(i checkpoint.Info) *api.CheckpointResult {
	return &api.CheckpointResult{
		Name: i.Name, Path: i.Path, Index: i.Meta.Index, Term: i.Meta.Term, Keys: i.Keys, Blocks: i.Blocks,
		Size: i.Size, StateHash: format.FormatStateHash(i.StateHash), Checksum: hex16(i.Checksum),
	}
}

// DeltaResult describes a delta as POST /v1/admin/delta does.
func DeltaResult(i delta.Info) *api.DeltaResult {
	return &api.DeltaResult{
		Name: i.Name, Path: i.Path, FromIndex: i.Meta.From, ToIndex: i.Meta.To, Term: i.Meta.Term, Parent: i.Meta.Parent,
		Keys: i.Keys(), Puts: i.Puts, Tombstones: i.Tombstones, Blocks: i.Blocks, Size: i.Size, Checksum: hex16(i.Checksum),
	}
}

// CompactResult describes a compaction as POST /v1/admin/compact does.
func CompactResult(r store.CompactResult) *api.CompactResult {
	out := &api.CompactResult{WALFirstIndex: r.WALFirstIndex,
		DroppedSegments: nonNil(r.DroppedSegments), RemovedFiles: nonNil(r.RemovedFiles)}
	if r.Checkpoint.Name != "" {
		out.Checkpoint = CheckpointResult(r.Checkpoint)
	}
	return out
}

// hex16 formats a checksum as 16 hex digits.
func hex16(v uint64) string { return fmt.Sprintf("%016x", v) }

// nonNil makes an empty list encode as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
