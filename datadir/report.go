package datadir

import (
	"errors"
	"fmt"

	"github.com/kvtool/kvtool/manifest"
)

// ErrNoDataDir is returned (wrapped) when the directory does not exist or
// holds neither a manifest nor a WAL: it is not a data directory at all,
// which is a usage mistake rather than damage.
var ErrNoDataDir = errors.New("kvtool/datadir: not a kvtool data directory")

// FileKind says what a file of the directory is.
type FileKind string

// File kinds, as reports print them.
const (
	KindManifest   FileKind = "manifest"
	KindCheckpoint FileKind = "checkpoint"
	KindDelta      FileKind = "delta"
	KindSegment    FileKind = "segment"
	KindWAL        FileKind = "wal"             // the WAL directory as a whole (an empty WAL that should not be)
	KindIntent     FileKind = "truncate-intent" // a log cut a crash interrupted (segment.TruncateMarkerName)
)

// ProblemKind classifies a fault.
type ProblemKind string

// Problem kinds. The segment kinds (gap, chain-break, torn-tail, garbage)
// are those of segment.ProblemKind.
const (
	Corruption ProblemKind = "corruption" // bytes no writer could have produced
	Missing    ProblemKind = "missing"    // a file the manifest names does not exist
	Mismatch   ProblemKind = "mismatch"   // a file differs from what the manifest recorded
	Chain      ProblemKind = "chain"      // the delta chain has a gap, an overlap or a wrong parent
	Foreign    ProblemKind = "foreign"    // the file belongs to another store
	Coverage   ProblemKind = "coverage"   // the WAL does not cover what the manifest needs
)

// NoOffset is the Offset of a problem about a file as a whole (missing, or
// of the wrong size).
const NoOffset = -1

// Problem is one fault, in one file.
type Problem struct {
	Path   string      `json:"path"`
	Offset int64       `json:"offset"` // byte offset of the damaged header, frame or field; NoOffset for the whole file
	Kind   ProblemKind `json:"kind"`
	Reason string      `json:"reason"`
}

// String describes the problem: file, offset, kind, reason.
func (p Problem) String() string {
	if p.Offset == NoOffset {
		return fmt.Sprintf("%s: %s: %s", p.Path, p.Kind, p.Reason)
	}
	return fmt.Sprintf("%s: %s at offset %d: %s", p.Path, p.Kind, p.Offset, p.Reason)
}

// FileReport is what verification found in one file.
type FileReport struct {
	Path     string    `json:"path"`
	Kind     FileKind  `json:"kind"`
	Size     int64     `json:"size"` // bytes on disk (0 if missing)
	OK       bool      `json:"ok"`
	Problems []Problem `json:"problems"`
}

// Report is what a verification found.
type Report struct {
	Dir string
	// Manifest is the decoded manifest; nil if it is missing or damaged
	// (or the verification did not need it).
	Manifest *manifest.Manifest
	// Files lists every file checked, in the order checked: manifest, base
	// checkpoint, deltas, WAL segments.
	Files []FileReport
	// Faults counts the problems in all Files.
	Faults int
	// Notes are remarks that are not faults: files the manifest does not
	// name, quarantine and temporary files, problems left out of a report.
	Notes []string

	SnapshotIndex uint64 // the index the base and deltas bring the state to
	WALFirstIndex uint64 // first index of the oldest segment (0: no segments)
	WALLastIndex  uint64 // last intact index of the newest segment
	// AppliedIndex is the index recovery would reach: the WAL's last intact
	// index, or the snapshot's index if the WAL ends there. It is 0 when
	// the store would not open: a fault other than a torn tail of the
	// newest segment (which the store cuts), or no manifest.
	AppliedIndex uint64
	// Raft describes a cluster member's raft log, when VerifyOptions.Raft
	// read one (nil otherwise, or when its state could not be read).
	Raft *RaftInfo
}

// OK reports whether no fault was found.
func (r *Report) OK() bool { return r.Faults == 0 }

// Problems returns every fault, file by file.
func (r *Report) Problems() []Problem {
	var out []Problem
	for _, f := range r.Files {
		out = append(out, f.Problems...)
	}
	return out
}

// Err returns nil when no fault was found, else an error naming the first
// fault and the count.
func (r *Report) Err() error {
	ps := r.Problems()
	switch len(ps) {
	case 0:
		return nil
	case 1:
		return errors.New(ps[0].String())
	}
	return fmt.Errorf("%s (and %d more faults)", ps[0], len(ps)-1)
}

// file returns the report of path, adding it with kind if it is new.
func (r *Report) file(path string, kind FileKind) *FileReport {
	for i := range r.Files {
		if r.Files[i].Path == path {
			return &r.Files[i]
		}
	}
	r.Files = append(r.Files, FileReport{Path: path, Kind: kind, OK: true, Problems: []Problem{}})
	return &r.Files[len(r.Files)-1]
}

// addf records a fault in the file at path.
func (r *Report) addf(path string, kind FileKind, off int64, pk ProblemKind, reason string, args ...any) {
	f := r.file(path, kind)
	f.Problems = append(f.Problems, Problem{Path: path, Offset: off, Kind: pk, Reason: fmt.Sprintf(reason, args...)})
	f.OK = false
	r.Faults++
}

// notef records a remark that is not a fault.
func (r *Report) notef(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}
