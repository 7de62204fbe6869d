package query

import (
	"path/filepath"
	"strings"

	"modernc.org/sqlite/vtab"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// segments is the WAL's segment files, oldest first:
//
//	segments(name TEXT, first_index INTEGER, last_index INTEGER,
//	         records INTEGER, size INTEGER, term INTEGER,
//	         needed INTEGER, problems TEXT)
//
// as `kvtool wal verify` reads them (every record is read and checked).
// last_index is first_index-1 for an empty segment; needed is 1 when
// recovery needs the segment (it holds an index at or after the manifest's
// WAL first index, or is the newest); problems lists the damage found in
// it, NULL if none. Nothing is pushed down (see list.go).
var segmentsDef = listDef("segments",
	"CREATE TABLE x(name TEXT, first_index INTEGER, last_index INTEGER, records INTEGER, size INTEGER, term INTEGER, needed INTEGER, problems TEXT)",
	segmentRows)

func segmentRows(s *Session) ([][]vtab.Value, error) {
	walDir := filepath.Join(s.src.Dir, format.WALDir)
	rep, err := segment.Verify(s.src.FS, walDir, segment.VerifyOptions{})
	if vfs.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	need := uint64(0)
	if m, err := manifest.Load(s.src.FS, s.src.Dir); err == nil {
		need = m.WALFirstIndex
	}
	problems := map[string][]string{}
	for _, p := range rep.Problems {
		problems[p.Path] = append(problems[p.Path], p.String())
	}
	rows := make([][]vtab.Value, len(rep.Segments))
	for i, g := range rep.Segments {
		newest := i == len(rep.Segments)-1
		rows[i] = []vtab.Value{
			g.Name, int64(g.FirstIndex), int64(g.LastIndex), g.Records, g.Size, int64(g.Term),
			boolValue(newest || g.LastIndex >= need), textOrNull(strings.Join(problems[g.Path], "; ")),
		}
	}
	return rows, nil
}
