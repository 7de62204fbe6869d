package query

import (
	"modernc.org/sqlite/vtab"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
)

// deltas is every delta file in DATA/snap, by range:
//
//	deltas(name TEXT, from_index INTEGER, to_index INTEGER, term INTEGER,
//	       puts INTEGER, tombstones INTEGER, size INTEGER, parent TEXT,
//	       checksum TEXT, in_chain INTEGER, error TEXT)
//
// from each file's header and footer (`kvtool delta list`): it covers the
// entries after from_index through to_index. in_chain is 1 when the
// manifest names it; error says why a file could not be read. Nothing is
// pushed down (see list.go).
var deltasDef = listDef("deltas",
	"CREATE TABLE x(name TEXT, from_index INTEGER, to_index INTEGER, term INTEGER, puts INTEGER, tombstones INTEGER, size INTEGER, parent TEXT, checksum TEXT, in_chain INTEGER, error TEXT)",
	deltaRows)

func deltaRows(s *Session) ([][]vtab.Value, error) {
	snaps, err := datadir.ListSnapshots(s.src.FS, s.src.Dir)
	if err != nil {
		return nil, err
	}
	rows := make([][]vtab.Value, len(snaps.Deltas))
	for i, d := range snaps.Deltas {
		row := []vtab.Value{d.Name, nil, nil, nil, nil, nil, nil, nil, nil, boolValue(d.InChain), errValue(d.Err)}
		if d.Err == nil {
			row[1], row[2], row[3] = int64(d.Meta.From), int64(d.Meta.To), int64(d.Meta.Term)
			row[4], row[5], row[6] = int64(d.Puts), int64(d.Tombstones), d.Size
			row[7], row[8] = textOrNull(d.Meta.Parent), format.FormatStateHash(d.Checksum)
		}
		rows[i] = row
	}
	return rows, nil
}
