package query

import (
	"modernc.org/sqlite/vtab"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
)

// checkpoints is every checkpoint file in DATA/snap, by index:
//
//	checkpoints(name TEXT, "index" INTEGER, term INTEGER, keys INTEGER,
//	            size INTEGER, blocks INTEGER, state_hash TEXT,
//	            checksum TEXT, base INTEGER, error TEXT)
//
// from each file's header and footer (`kvtool checkpoint list`). base is 1
// for the manifest's base; error says why a file could not be read (its
// other columns are then NULL or 0). Nothing is pushed down (see list.go).
var checkpointsDef = listDef("checkpoints",
	`CREATE TABLE x(name TEXT, "index" INTEGER, term INTEGER, keys INTEGER, size INTEGER, blocks INTEGER, state_hash TEXT, checksum TEXT, base INTEGER, error TEXT)`,
	checkpointRows)

func checkpointRows(s *Session) ([][]vtab.Value, error) {
	snaps, err := datadir.ListSnapshots(s.src.FS, s.src.Dir)
	if err != nil {
		return nil, err
	}
	rows := make([][]vtab.Value, len(snaps.Checkpoints))
	for i, c := range snaps.Checkpoints {
		row := []vtab.Value{c.Name, nil, nil, nil, nil, nil, nil, nil, boolValue(c.Base), errValue(c.Err)}
		if c.Err == nil {
			row[1], row[2], row[3], row[4], row[5] = int64(c.Meta.Index), int64(c.Meta.Term), int64(c.Keys), c.Size, int64(c.Blocks)
			row[6], row[7] = format.FormatStateHash(c.StateHash), format.FormatStateHash(c.Checksum)
		}
		rows[i] = row
	}
	return rows, nil
}
