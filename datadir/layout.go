package datadir

import (
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// layout is what a data directory holds, by file name, before any file is
// read.
type layout struct {
	dir, walDir, snapDir string
	hasManifest          bool
	hasWAL               bool     // DATA/wal exists
	segments             []string // segment names, oldest first
	checkpoints          []string // checkpoint names, by index
	deltas               []string // delta names, by range
	other                []string // paths of temp, quarantine and unknown files, and DATA/raft
	hasRaft              bool     // DATA/raft exists: a cluster member's directory
	intents              []string // paths of truncate intents (segment.TruncateMarkerName) in DATA/wal or DATA/raft
	sizes                map[string]int64
}

// scan lists dir, DATA/wal and DATA/snap. A missing wal or snap directory
// is an empty one; a missing dir, or one with neither a manifest nor a
// WAL, is ErrNoDataDir.
func scan(fsys vfs.FS, dir string) (*layout, error) {
	l := &layout{dir: dir, walDir: filepath.Join(dir, format.WALDir), snapDir: filepath.Join(dir, format.SnapDir),
		sizes: map[string]int64{}}
	fi, err := fsys.Stat(dir)
	switch {
	case vfs.IsNotExist(err):
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoDataDir, dir)
	case err != nil:
		return nil, fmt.Errorf("kvtool/datadir: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("%w: %s is not a directory", ErrNoDataDir, dir)
	}
	steps := []func(vfs.FS) error{l.scanRoot, l.scanWAL, l.scanSnap}
	for _, step := range steps {
		if err := step(fsys); err != nil {
			return nil, err
		}
	}
	if !l.hasManifest && !l.hasWAL {
		return nil, fmt.Errorf("%w: %s has neither %s nor %s/", ErrNoDataDir, dir, format.ManifestName, format.WALDir)
	}
	return l, nil
}

// list returns the names in d; a missing directory is empty (ok false).
func list(fsys vfs.FS, d string) (names []string, ok bool, err error) {
	names, err = fsys.List(d)
	if vfs.IsNotExist(err) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("kvtool/datadir: list %s: %w", d, err)
	}
	return names, true, nil
}

func (l *layout) scanRoot(fsys vfs.FS) error {
	names, _, err := list(fsys, l.dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		switch n {
		case format.ManifestName:
			l.hasManifest = true
			if err := l.stat(fsys, filepath.Join(l.dir, n)); err != nil {
				return err
			}
		case format.LockName, format.WALDir, format.SnapDir:
		case format.RaftDir:
			l.hasRaft = true
			l.other = append(l.other, filepath.Join(l.dir, n))
			if err := l.scanIntent(fsys, filepath.Join(l.dir, n)); err != nil {
				return err
			}
		default:
			l.other = append(l.other, filepath.Join(l.dir, n))
		}
	}
	return nil
}

func (l *layout) scanWAL(fsys vfs.FS) error {
	names, ok, err := list(fsys, l.walDir)
	if err != nil {
		return err
	}
	l.hasWAL = ok
	for _, n := range names {
		if _, ok := format.ParseSegmentName(n); ok {
			l.segments = append(l.segments, n)
			if err := l.stat(fsys, filepath.Join(l.walDir, n)); err != nil {
				return err
			}
			continue
		}
		if n == segment.TruncateMarkerName {
			l.intents = append(l.intents, filepath.Join(l.walDir, n))
			continue
		}
		l.other = append(l.other, filepath.Join(l.walDir, n))
	}
	return nil
}

// scanIntent records the truncate intent in the log directory d, if any.
// The rest of a raft directory is the cluster's to check when the member
// starts.
func (l *layout) scanIntent(fsys vfs.FS, d string) error {
	path := filepath.Join(d, segment.TruncateMarkerName)
	_, err := fsys.Stat(path)
	switch {
	case err == nil:
		l.intents = append(l.intents, path)
	case !vfs.IsNotExist(err):
		return fmt.Errorf("kvtool/datadir: %w", err)
	}
	return nil
}

func (l *layout) scanSnap(fsys vfs.FS) error {
	names, _, err := list(fsys, l.snapDir)
	if err != nil {
		return err
	}
	for _, n := range names {
		_, ckpt := format.ParseCheckpointName(n)
		_, _, dlt := format.ParseDeltaName(n)
		switch {
		case ckpt:
			l.checkpoints = append(l.checkpoints, n)
		case dlt:
			l.deltas = append(l.deltas, n)
		default:
			l.other = append(l.other, filepath.Join(l.snapDir, n))
			continue
		}
		if err := l.stat(fsys, filepath.Join(l.snapDir, n)); err != nil {
			return err
		}
	}
	return nil
}

// stat records the size of path.
func (l *layout) stat(fsys vfs.FS, path string) error {
	fi, err := fsys.Stat(path)
	if err != nil && !vfs.IsNotExist(err) {
		return fmt.Errorf("kvtool/datadir: %w", err)
	}
	if err == nil {
		l.sizes[path] = fi.Size()
	}
	return nil
}

// walBytes is the size of every segment.
func (l *layout) walBytes() int64 {
	var n int64
	for _, s := range l.segments {
		n += l.sizes[filepath.Join(l.walDir, s)]
	}
	return n
}

// describeOther says what a file that is neither the manifest, a segment,
// a checkpoint nor a delta is.
func describeOther(path string) string {
	name := filepath.Base(path)
	switch {
	case format.IsQuarantineName(name):
		return path + ": quarantine file: bytes cut by a repair, kept for inspection; never replayed"
	case format.IsTempName(name):
		return path + ": temporary file of an unfinished write; never trusted, safe to remove"
	case name == format.RaftDir:
		return path + ": raft directory: a cluster member's raft log and state (kvtool verify checks them, kvtool inspect summarises them)"
	case name == format.TransferDir:
		return path + ": transfer directory: a snapshot being received, or a checkpoint kept for a resumed send (kvtool transfer status says which); never replayed"
	}
	return path + ": not a kvtool file name; ignored"
}

// named reports whether the manifest names the snapshot file name.
func named(m *manifest.Manifest, name string) bool {
	if m == nil {
		return false
	}
	if m.Base != nil && m.Base.Name == name {
		return true
	}
	for _, d := range m.Deltas {
		if d.Name == name {
			return true
		}
	}
	return false
}

// validName reports whether a name from the manifest is a plain file name
// (never a path that could leave DATA/snap).
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && filepath.Base(name) == name
}

// intentText describes the truncate intent at path: a cut of its log that
// a crash interrupted, which the next open of the log finishes. A damaged
// intent is described with its *format.CorruptionError.
func intentText(fsys vfs.FS, path string) (string, *format.CorruptionError, error) {
	last, _, err := segment.ReadTruncateIntent(fsys, filepath.Dir(path))
	if ce := format.AsCorruption(err); ce != nil {
		return fmt.Sprintf("%s: damaged truncate intent (%s): the log in %s will not open until it is dealt with", path, ce.Reason, filepath.Dir(path)), ce, nil
	} else if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("%s: pending truncation: a cut of the log after index %d was interrupted; the next open of the log finishes it", path, last), nil, nil
}
