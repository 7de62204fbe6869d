package xferstore

import (
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

func walDir(dir string) string { return filepath.Join(dir, format.WALDir) }

// clearDir removes every file in dir (a missing dir is empty) and syncs it.
func clearDir(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if vfs.IsNotExist(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("kvtool/xferstore: %w", err)
	}
	for _, n := range names {
		if err := fs.Remove(filepath.Join(dir, n)); err != nil && !vfs.IsNotExist(err) {
			return fmt.Errorf("kvtool/xferstore: %w", err)
		}
	}
	return syncDir(fs, dir)
}

func syncDir(fs vfs.FS, dir string) error {
	if err := fs.SyncDir(dir); err != nil && !vfs.IsNotExist(err) {
		return fmt.Errorf("kvtool/xferstore: fsync %s: %w", dir, err)
	}
	return nil
}

// mkdirDurable creates dir and its missing parents durably
// (format.MkdirAllDurable, the one durable-publish path).
func mkdirDurable(fs vfs.FS, dir string) error {
	if err := format.MkdirAllDurable(fs, dir); err != nil {
		return fmt.Errorf("kvtool/xferstore: %w", err)
	}
	return nil
}
