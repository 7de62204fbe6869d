package datadir

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// Range is an inclusive range of log indexes.
type Range struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// Covered returns the indexes Replay can rebuild the state of dir at, as
// ascending disjoint ranges: each point the base and deltas reach (at or
// after the manifest's WAL first index, less one), and every index from
// the first such point the WAL continues from through the WAL's last intact
// index. It reads every segment.
func Covered(fsys vfs.FS, dir string) ([]Range, error) {
	man, err := manifest.Load(fsys, dir)
	if err != nil {
		return nil, err
	}
	first, last, err := walSpan(fsys, filepath.Join(dir, format.WALDir))
	if err != nil {
		return nil, err
	}
	return coveredRanges(chainPoints(man), first, last), nil
}

// chainPoints are the indexes the base and each delta bring the state to,
// keeping only those the WAL is recorded to continue from.
func chainPoints(man *manifest.Manifest) []uint64 {
	var all []uint64
	if man.Base != nil {
		all = append(all, man.Base.Index)
	} else {
		all = append(all, 0)
	}
	for _, d := range man.Deltas {
		all = append(all, d.Index)
	}
	var out []uint64
	for _, p := range all {
		if p+1 >= man.WALFirstIndex {
			out = append(out, p)
		}
	}
	return out
}

// walSpan returns the first index and the last intact index of the WAL
// (first > last when it holds no record).
func walSpan(fsys vfs.FS, walDir string) (first, last uint64, err error) {
	if _, ok, err := list(fsys, walDir); err != nil || !ok {
		return 1, 0, err
	}
	rep, err := segment.Verify(fsys, walDir, segment.VerifyOptions{})
	if err != nil || len(rep.Segments) == 0 {
		return 1, 0, err
	}
	return rep.FirstIndex, rep.LastIndex, nil
}

// coveredRanges merges the chain points with the WAL's span: from the first
// point p with p+1 >= first, every index through last is covered.
func coveredRanges(points []uint64, first, last uint64) []Range {
	var out []Range
	add := func(r Range) {
		if n := len(out); n > 0 && r.From <= out[n-1].To+1 {
			out[n-1].To = max(out[n-1].To, r.To)
			return
		}
		out = append(out, r)
	}
	walDone := false
	for _, p := range points {
		if !walDone && p+1 >= first && p <= last {
			add(Range{p, last})
			walDone = true
			continue
		}
		add(Range{p, p})
	}
	return out
}

// RangesText describes ranges for a person: "index 100, 150 to 400".
func RangesText(rs []Range) string {
	if len(rs) == 0 {
		return "no index"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		if r.From == r.To {
			parts[i] = fmt.Sprint(r.From)
		} else {
			parts[i] = fmt.Sprintf("%d to %d", r.From, r.To)
		}
	}
	noun := "index "
	if len(rs) > 1 || rs[0].From != rs[0].To {
		noun = "indexes "
	}
	return noun + strings.Join(parts, ", ")
}
