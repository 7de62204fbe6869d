package query

import (
	"strings"
	"time"

	"modernc.org/sqlite/vtab"
)

// leases is the retention leases of a live store, oldest first:
//
//	leases(peer TEXT, pinned_index INTEGER, files TEXT,
//	       retained_bytes INTEGER, state TEXT, expires TEXT)
//
// A lease keeps, for a peer being sent a snapshot, the WAL after
// pinned_index and the named files (comma-separated) from compaction;
// state is active, expired or evicted; expires is RFC 3339. Leases live in
// the serving process only: from a data directory the table is empty.
// Nothing is pushed down (see list.go).
var leasesDef = listDef("leases",
	"CREATE TABLE x(peer TEXT, pinned_index INTEGER, files TEXT, retained_bytes INTEGER, state TEXT, expires TEXT)",
	leaseRows)

func leaseRows(s *Session) ([][]vtab.Value, error) {
	if s.src.Leases == nil {
		return nil, nil
	}
	ls := s.src.Leases()
	rows := make([][]vtab.Value, len(ls))
	for i, l := range ls {
		rows[i] = []vtab.Value{
			l.Peer, int64(l.Index), strings.Join(l.Files, ","), l.RetainedBytes, l.State, l.Expires.UTC().Format(time.RFC3339),
		}
	}
	return rows, nil
}
