package datadir

import (
	"encoding/binary"
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// Offsets in a segment header (see package segment): the store ID and the
// first index are the first fields of its ext.
const (
	segStoreIDOffset = headerExtOffset
	segFirstOffset   = headerExtOffset + 16
	segExtMin        = 16 + 8 + 8 // store ID, first index, term
)

// segHeader is what datadir reads of a segment header.
type segHeader struct {
	storeID manifest.StoreID
	first   uint64
	term    uint64
}

// readSegmentHeader reads the header of the segment at path. Damage is a
// *format.CorruptionError.
func readSegmentHeader(fsys vfs.FS, path string) (segHeader, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return segHeader{}, err
	}
	defer f.Close()
	h, err := format.ReadHeader(f, path, format.MagicSegment)
	if err != nil {
		return segHeader{}, err
	}
	if len(h.Ext) < segExtMin {
		return segHeader{}, format.Corruptf(path, 12, "segment header ext is %d bytes, want at least %d", len(h.Ext), segExtMin)
	}
	var sh segHeader
	copy(sh.storeID[:], h.Ext)
	sh.first = binary.LittleEndian.Uint64(h.Ext[16:])
	sh.term = binary.LittleEndian.Uint64(h.Ext[24:])
	return sh, nil
}

// checkWAL verifies every segment, their store IDs, and that they cover
// what the manifest needs.
func (v *verifier) checkWAL() error {
	if !v.l.hasWAL {
		if v.man != nil {
			v.checkCoverage(nil)
		}
		return nil
	}
	rep, err := segment.Verify(v.fsys, v.l.walDir, segment.VerifyOptions{Progress: v.progress()})
	if vfs.IsNotExist(err) {
		// A segment listed and then gone: a running server's compaction
		// dropped it while verify read the WAL (in a directory no one
		// writes a listed file cannot vanish). No damage, and nothing
		// more to check of a WAL that moved on: say to run it again.
		v.rep.notef("%s: the WAL changed while it was read (%v): a running server compacted it; run verify again to check it", v.l.walDir, err)
		return nil
	} else if err != nil {
		return err
	}
	v.advance(v.l.walBytes())
	v.addSegments(rep)
	if v.man == nil {
		return nil
	}
	if err := v.checkSegmentStores(rep.Segments); err != nil {
		return err
	}
	v.checkCoverage(rep)
	return nil
}

// addSegments records every segment and every problem segment.Verify found.
func (v *verifier) addSegments(rep *segment.Report) {
	for _, s := range rep.Segments {
		v.rep.file(s.Path, KindSegment).Size = v.l.sizes[s.Path]
	}
	for _, p := range rep.Problems {
		v.rep.addf(p.Path, KindSegment, p.Offset, ProblemKind(p.Kind.String()), "%s", p.Reason)
	}
	if len(rep.Segments) > 0 {
		v.rep.WALFirstIndex, v.rep.WALLastIndex = rep.FirstIndex, rep.LastIndex
	}
}

// checkSegmentStores checks that every segment whose header is intact
// carries the manifest's store ID (a damaged header is reported already).
func (v *verifier) checkSegmentStores(segs []segment.SegmentInfo) error {
	for _, s := range segs {
		h, err := readSegmentHeader(v.fsys, s.Path)
		if format.AsCorruption(err) != nil {
			continue
		} else if err != nil {
			return fmt.Errorf("kvtool/datadir: %w", err)
		}
		if h.storeID != v.man.StoreID {
			v.rep.addf(s.Path, KindSegment, segStoreIDOffset, Foreign,
				"segment belongs to store %s, the manifest's store is %s", h.storeID, v.man.StoreID)
		}
	}
	return nil
}

// checkCoverage checks that the WAL holds every index from the manifest's
// WAL first index through its end, and reaches the snapshot's index. rep is
// nil when there is no WAL directory.
func (v *verifier) checkCoverage(rep *segment.Report) {
	snap, need := v.man.SnapshotIndex(), v.man.WALFirstIndex
	if need > snap+1 {
		v.rep.addf(manifest.Path(v.l.dir), KindManifest, NoOffset, Coverage,
			"the manifest needs the WAL from index %d, but its base and deltas end at index %d: indexes %d to %d are in no file",
			need, snap, snap+1, need-1)
		return
	}
	if rep == nil || len(rep.Segments) == 0 {
		if need != snap+1 {
			v.rep.addf(v.l.walDir, KindWAL, NoOffset, Coverage,
				"the WAL has no segments, but the manifest needs it from index %d (its base and deltas end at %d)", need, snap)
		}
		return
	}
	first, last := rep.Segments[0], rep.Segments[len(rep.Segments)-1]
	if first.FirstIndex > need {
		v.rep.addf(first.Path, KindSegment, segFirstOffset, Coverage,
			"the WAL starts at index %d, but the manifest needs it from index %d: the segments holding %d to %d are missing",
			first.FirstIndex, need, need, first.FirstIndex-1)
	}
	if rep.LastIndex < snap {
		v.rep.addf(last.Path, KindSegment, NoOffset, Coverage,
			"the WAL ends at index %d, before index %d that the base and deltas reach", rep.LastIndex, snap)
	}
}

// segmentTerm returns the term in the header of the segment holding index
// (the newest segment starting at or before it), or 0 if none does.
func segmentTerm(fsys vfs.FS, walDir string, index uint64) (uint64, error) {
	names, _, err := list(fsys, walDir)
	if err != nil {
		return 0, err
	}
	holder := ""
	for _, n := range names {
		if first, ok := format.ParseSegmentName(n); ok && first <= index {
			holder = n // names sort in index order
		}
	}
	if holder == "" {
		return 0, nil
	}
	h, err := readSegmentHeader(fsys, filepath.Join(walDir, holder))
	if err != nil {
		return 0, err
	}
	return h.term, nil
}
