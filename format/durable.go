package format

import (
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/vfs"
)

// This file is the one durable-publish path of kvtool (DESIGN.md, "On-disk
// format requirements"): every directory, and every file published under
// its final name, goes through these helpers, so the rule "an entry is
// durable only after an fsync of its directory" is written once. The
// helpers return errors naming the path but no package prefix; callers add
// theirs.

// MkdirAllDurable creates dir and any missing parents, and makes each of
// them durable: it fsyncs the parent of every directory it created,
// deepest first, and the parent of dir itself even when dir already
// existed, because a process killed between its mkdir and that fsync
// leaves a directory that exists but would not survive a power loss.
// Parents of ancestors that already existed are not synced: they are the
// caller's (or the administrator's) to make durable.
func MkdirAllDurable(fs vfs.FS, dir string) error {
	dir = filepath.Clean(dir)
	missing, err := missingDirs(fs, dir)
	if err != nil {
		return err
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	if len(missing) == 0 || missing[0] != dir {
		missing = append([]string{dir}, missing...) // dir's own entry, re-synced
	}
	for _, d := range missing {
		if err := syncParent(fs, d); err != nil {
			return err
		}
	}
	return nil
}

// missingDirs returns dir and those of its ancestors that do not exist,
// deepest first.
func missingDirs(fs vfs.FS, dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		_, err := fs.Stat(d)
		if err == nil || d == filepath.Dir(d) {
			return missing, nil
		}
		if !vfs.IsNotExist(err) {
			return nil, fmt.Errorf("create directory %s: %w", dir, err)
		}
		missing = append(missing, d)
	}
}

// syncParent fsyncs the directory holding path's entry. The root has no
// parent: nothing to sync.
func syncParent(fs vfs.FS, path string) error {
	parent := filepath.Dir(path)
	if parent == path {
		return nil
	}
	if err := fs.SyncDir(parent); err != nil {
		return fmt.Errorf("fsync directory %s (holding %s): %w", parent, filepath.Base(path), err)
	}
	return nil
}

// RenameDurable renames oldpath to newpath and makes the change durable:
// an fsync of newpath's directory, then of oldpath's if that is another
// one. Syncing the new directory first means a crash between the two syncs
// can show the entry under both names, never under neither. If the rename
// succeeded but a sync failed, the error says so: the caller must treat the
// outcome as unknown (fail stop), never retry the fsync.
func RenameDurable(fs vfs.FS, oldpath, newpath string) error {
	if err := fs.Rename(oldpath, newpath); err != nil {
		return fmt.Errorf("rename %s to %s: %w", oldpath, newpath, err)
	}
	if err := syncParent(fs, newpath); err != nil {
		return err
	}
	if filepath.Dir(filepath.Clean(oldpath)) == filepath.Dir(filepath.Clean(newpath)) {
		return nil
	}
	return syncParent(fs, oldpath)
}

// PublishFile makes f, written under the temporary name tmp, durable under
// path: it fsyncs f, renames tmp to path and fsyncs the directory (see
// RenameDurable). f stays open; the caller closes it (a WAL segment keeps
// writing into it). If the fsync of f or the rename fails, tmp is removed
// and path is untouched; if a directory fsync fails, the rename happened
// and the outcome is unknown to a crash.
func PublishFile(fs vfs.FS, f vfs.File, tmp, path string) error {
	if err := f.Sync(); err != nil {
		fs.Remove(tmp)
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, path); err != nil {
		fs.Remove(tmp)
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	if err := syncParent(fs, path); err != nil {
		return err
	}
	if filepath.Dir(filepath.Clean(tmp)) != filepath.Dir(filepath.Clean(path)) {
		return syncParent(fs, tmp)
	}
	return nil
}

// CreateTemp creates the temporary file that PublishFile will publish as
// path: a TempName beside path, so that a crash leaves a name RemoveTemps
// recognises.
func CreateTemp(fs vfs.FS, path string, nonce uint64) (vfs.File, string, error) {
	tmp := filepath.Join(filepath.Dir(path), TempName(filepath.Base(path), nonce))
	f, err := fs.Create(tmp)
	if err != nil {
		return nil, "", fmt.Errorf("create %s: %w", tmp, err)
	}
	return f, tmp, nil
}

// RemoveTemps removes the temporary files (TempName) in dir, which a
// process stopped in the middle of a publish left behind: they were never
// published, so never trusted. It fsyncs dir if it removed anything, so the
// removals survive a crash, and returns the paths removed. A missing dir
// holds nothing to remove.
//
// Call it only on a directory no one else is writing into (a data
// directory under its lock, at open): a temp file being written right now
// has the same name as a leftover.
func RemoveTemps(fs vfs.FS, dir string) ([]string, error) {
	names, err := fs.List(dir)
	if vfs.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var removed []string
	for _, n := range names {
		if !IsTempName(n) {
			continue
		}
		p := filepath.Join(dir, n)
		if err := fs.Remove(p); err != nil && !vfs.IsNotExist(err) {
			return removed, fmt.Errorf("remove leftover temporary file %s: %w", p, err)
		}
		removed = append(removed, p)
	}
	if len(removed) == 0 {
		return nil, nil
	}
	if err := fs.SyncDir(dir); err != nil {
		return removed, fmt.Errorf("fsync %s after removing leftover temporary files: %w", dir, err)
	}
	return removed, nil
}
