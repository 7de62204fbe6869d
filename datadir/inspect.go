package datadir

import (
	"errors"
	"path/filepath"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/delta"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// InspectOptions tune Inspect.
type InspectOptions struct {
	// WithState also rebuilds the state (Replay, in memory) to report the
	// applied index, the key count and the state hash. It reads every byte
	// of the base, the deltas and the WAL tail.
	WithState bool
	// Progress, if set, is called as the WAL is read with the bytes read so
	// far and the WAL's size.
	Progress func(done, total int64)
}

// CheckpointFile is a checkpoint found in DATA/snap.
type CheckpointFile struct {
	checkpoint.Info      // Err is set if its header or footer could not be read
	Base            bool // the manifest names it as the base
}

// DeltaFile is a delta found in DATA/snap.
type DeltaFile struct {
	delta.Info      // Err is set if its header or footer could not be read
	InChain    bool // the manifest names it in the chain
}

// Snapshots are the checkpoints and deltas of a data directory, and the
// manifest that says which of them are current.
type Snapshots struct {
	Dir string
	// Manifest is the decoded manifest, nil if ManifestErr says why not.
	Manifest    *manifest.Manifest
	ManifestErr error
	Checkpoints []CheckpointFile // every checkpoint in DATA/snap, named or not, by index
	Deltas      []DeltaFile      // every delta in DATA/snap, named or not, by range
}

// Summary is what Inspect found in a data directory.
type Summary struct {
	Snapshots
	// Segments are the WAL segments, oldest first; WALProblems what
	// segment.Verify found wrong with them.
	Segments    []segment.SegmentInfo
	WALProblems []segment.Problem
	Other       []string // other files, each with what it is
	// State is the rebuilt state (InspectOptions.WithState), nil if it was
	// not asked for or StateErr says why it could not be rebuilt.
	State    *State
	StateErr error
}

// ListSnapshots describes the manifest and every checkpoint and delta of
// dir from their headers and footers, without reading the WAL. A damaged
// manifest or file is described (ManifestErr, Info.Err), not an error; the
// error is for what stops ListSnapshots itself (an I/O error, ErrNoDataDir).
// It never writes.
func ListSnapshots(fsys vfs.FS, dir string) (*Snapshots, error) {
	l, err := scan(fsys, dir)
	if err != nil {
		return nil, err
	}
	return listSnapshots(fsys, l)
}

func listSnapshots(fsys vfs.FS, l *layout) (*Snapshots, error) {
	s := &Snapshots{Dir: l.dir}
	if err := s.loadManifest(fsys, l.dir); err != nil {
		return nil, err
	}
	s.readSnap(fsys, l)
	return s, nil
}

// Inspect summarises the data directory dir: its manifest, segments,
// checkpoints and deltas (named by the manifest or not), and with
// opts.WithState the state they rebuild. A damaged manifest or file is
// described, not an error; the error is for what stops Inspect itself (an
// I/O error, ErrNoDataDir). Inspect never writes.
func Inspect(fsys vfs.FS, dir string, opts InspectOptions) (*Summary, error) {
	l, err := scan(fsys, dir)
	if err != nil {
		return nil, err
	}
	snaps, err := listSnapshots(fsys, l)
	if err != nil {
		return nil, err
	}
	s := &Summary{Snapshots: *snaps}
	if err := s.readWAL(fsys, l, opts.Progress); err != nil {
		return nil, err
	}
	for _, p := range l.other {
		s.Other = append(s.Other, describeOther(p))
	}
	for _, p := range l.intents {
		text, _, err := intentText(fsys, p)
		if err != nil {
			return nil, err
		}
		s.Other = append(s.Other, text)
	}
	if opts.WithState && s.Manifest != nil {
		s.rebuild(fsys, dir)
	}
	return s, nil
}

// loadManifest records the manifest, or why it could not be read; only an
// I/O error is returned.
func (s *Snapshots) loadManifest(fsys vfs.FS, dir string) error {
	m, err := manifest.Load(fsys, dir)
	if err != nil && !errors.Is(err, manifest.ErrNotFound) && format.AsCorruption(err) == nil {
		return err
	}
	s.Manifest, s.ManifestErr = m, err
	return nil
}

func (s *Summary) readWAL(fsys vfs.FS, l *layout, progress func(done, total int64)) error {
	if !l.hasWAL {
		return nil
	}
	rep, err := segment.Verify(fsys, l.walDir, segment.VerifyOptions{Progress: progress})
	if err != nil {
		return err
	}
	s.Segments, s.WALProblems = rep.Segments, rep.Problems
	return nil
}

// readSnap describes every checkpoint and delta from its header and footer.
func (s *Snapshots) readSnap(fsys vfs.FS, l *layout) {
	for _, n := range l.checkpoints {
		info, _ := checkpoint.ReadInfo(fsys, filepath.Join(l.snapDir, n))
		s.Checkpoints = append(s.Checkpoints, CheckpointFile{Info: info, Base: isBase(s.Manifest, n)})
	}
	for _, n := range l.deltas {
		info, _ := delta.ReadInfo(fsys, filepath.Join(l.snapDir, n))
		s.Deltas = append(s.Deltas, DeltaFile{Info: info, InChain: named(s.Manifest, n) && !isBase(s.Manifest, n)})
	}
}

func isBase(m *manifest.Manifest, name string) bool {
	return m != nil && m.Base != nil && m.Base.Name == name
}

// rebuild replays the directory into memory to describe its state.
func (s *Summary) rebuild(fsys vfs.FS, dir string) {
	res, err := Replay(fsys, dir, ReplayOptions{})
	if err != nil {
		s.StateErr = err
		return
	}
	s.State = &res.State
}
