package query

import (
	"modernc.org/sqlite/vtab"

	"github.com/kvtool/kvtool/manifest"
)

// manifest is the data directory's manifest, one row:
//
//	manifest(store_id TEXT, shards INTEGER, epoch INTEGER,
//	         generation INTEGER, base TEXT, base_index INTEGER,
//	         deltas INTEGER, snapshot_index INTEGER,
//	         wal_first_index INTEGER, segment_size INTEGER)
//
// base is NULL when the state starts empty at index 0; deltas counts the
// chain on top of it; snapshot_index is where base and deltas bring the
// state; recovery needs the WAL from wal_first_index. A missing or damaged
// manifest is an error. Nothing is pushed down (see list.go).
var manifestDef = listDef("manifest",
	"CREATE TABLE x(store_id TEXT, shards INTEGER, epoch INTEGER, generation INTEGER, base TEXT, base_index INTEGER, deltas INTEGER, snapshot_index INTEGER, wal_first_index INTEGER, segment_size INTEGER)",
	manifestRows)

func manifestRows(s *Session) ([][]vtab.Value, error) {
	m, err := manifest.Load(s.src.FS, s.src.Dir)
	if err != nil {
		return nil, err
	}
	var base, baseIndex vtab.Value
	if m.Base != nil {
		base, baseIndex = m.Base.Name, int64(m.Base.Index)
	}
	return [][]vtab.Value{{
		m.StoreID.String(), int64(m.Shards), int64(m.Epoch), int64(m.Generation), base, baseIndex,
		int64(len(m.Deltas)), int64(m.SnapshotIndex()), int64(m.WALFirstIndex), m.SegmentSize,
	}}, nil
}
