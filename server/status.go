package server

import (
	"errors"
	"net/http"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
)

// status answers the store's indexes, shards and WAL segments.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	out := Status(s.st)
	if s.cluster != nil {
		out.Cluster = clusterView(s.cluster.Status())
	}
	if s.opts.Replica != nil {
		out.Replica = s.opts.Replica()
	}
	writeJSON(w, http.StatusOK, out)
}

// Status describes st as GET /v1/status does, so that a command working on
// a store it opened itself can print the same JSON.
func Status(st *store.Store) *api.Status {
	snap := st.Snapshot()
	man := st.CurrentManifest()
	log := st.Log()
	out := &api.Status{
		StoreID:       man.StoreID.String(),
		DataDir:       st.Dir(),
		AppliedIndex:  snap.Index(),
		DurableIndex:  st.DurableIndex(),
		Shards:        snap.Shards(),
		Keys:          snap.Len(),
		WALFirstIndex: log.FirstIndex(),
		WALLastIndex:  log.LastIndex(),
		Segments:      []api.SegmentStatus{},
		Checkpoint:    fileStatus(man.Base),
		Deltas:        []api.FileStatus{},
	}
	if err := st.Err(); err != nil {
		out.Failed = err.Error()
	}
	for _, seg := range log.Segments() {
		out.Segments = append(out.Segments, api.SegmentStatus{
			Name: seg.Name, FirstIndex: seg.FirstIndex, LastIndex: seg.LastIndex, Records: seg.Records, Bytes: seg.Size,
		})
		out.WALBytes += seg.Size
	}
	for i := range man.Deltas {
		out.Deltas = append(out.Deltas, *fileStatus(&man.Deltas[i]))
	}
	out.Leases = []api.LeaseStatus{}
	for _, l := range st.Leases() {
		out.Leases = append(out.Leases, api.LeaseStatus{Peer: l.Peer, PinnedIndex: l.Index, Files: l.Files,
			RetainedBytes: l.RetainedBytes, State: l.State, Expires: l.Expires})
	}
	return out
}

func fileStatus(f *manifest.FileRef) *api.FileStatus {
	if f == nil {
		return nil
	}
	return &api.FileStatus{Name: f.Name, FromIndex: f.FromIndex, Index: f.Index, Bytes: f.Size}
}

// hash answers the state hash and applied index of one snapshot.
func (s *Server) hash(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.readSnapshot(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, api.HashResult{AppliedIndex: snap.Index(), StateHash: format.FormatStateHash(snap.Hash())})
}

// rotate seals the active WAL segment; readers and writers keep going.
func (s *Server) rotate(w http.ResponseWriter, r *http.Request) {
	if err := s.st.Rotate(); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, store.ErrClosed) || errors.Is(err, segment.ErrClosed) {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, "rotate: "+err.Error())
		return
	}
	var res api.RotateResult
	if segs := s.st.Log().Segments(); len(segs) > 0 {
		last := segs[len(segs)-1]
		res = api.RotateResult{Segment: last.Name, FirstIndex: last.FirstIndex}
	}
	writeJSON(w, http.StatusOK, res)
}
