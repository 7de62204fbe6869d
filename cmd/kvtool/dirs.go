package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// dirState is what a --data path holds, before a command opens it.
type dirState int

const (
	dirMissing  dirState = iota // nothing at the path
	dirEmpty                    // an empty directory (a LOCK or lost+found aside)
	dirStore                    // a kvtool data directory: MANIFEST or wal/
	dirOther                    // a directory holding other files
	dirNotDir                   // a file, not a directory
	dirNoParent                 // nothing at the path, nor at its parent
)

// statDataDir classifies the path data.
func statDataDir(fsys vfs.FS, data string) (dirState, error) {
	fi, err := fsys.Stat(data)
	switch {
	case vfs.IsNotExist(err):
		if _, perr := fsys.Stat(filepath.Dir(filepath.Clean(data))); vfs.IsNotExist(perr) {
			return dirNoParent, nil
		}
		return dirMissing, nil
	case err != nil:
		return 0, err
	case !fi.IsDir():
		return dirNotDir, nil
	}
	names, err := fsys.List(data)
	if err != nil {
		return 0, err
	}
	state := dirEmpty
	for _, n := range names {
		switch n {
		case format.ManifestName, format.WALDir:
			return dirStore, nil
		case format.LockName, "lost+found":
		default:
			state = dirOther
		}
	}
	return state, nil
}

// createHint says how to create a new store at data.
func createHint(data string) string {
	return "check --data and $" + envData + "; to create a new store there, run " + cmdline(data, "serve") +
		" or " + cmdline(data, "put", "--init", "KEY", "VALUE")
}

// noDataDir is the error every command gives for a data directory that is
// not there, or not a kvtool data directory: one wording, naming where the
// path came from and what to run next.
func noDataDir(fsys vfs.FS, data setting) error {
	state, err := statDataDir(fsys, data.value)
	if err != nil {
		return failed(fmt.Errorf("data directory %s: %w", data, err), "")
	}
	switch state {
	case dirMissing, dirNoParent:
		return failed(fmt.Errorf("no data directory at %s", data), createHint(data.value))
	case dirNotDir:
		return failed(fmt.Errorf("%s is a file, not a data directory", data), "check --data and $"+envData)
	case dirEmpty:
		return failed(fmt.Errorf("%s is empty: no kvtool store there yet", data), createHint(data.value))
	}
	return failed(fmt.Errorf("%s is not a kvtool data directory: it has neither %s nor %s/", data, format.ManifestName, format.WALDir),
		"check --data and $"+envData+"; a data directory holds MANIFEST, wal/ and snap/")
}

// existingDataDir resolves --data for a command that needs a data
// directory to exist already (every command but serve, transfer recv and
// put/txn --init), and checks that it does; it creates nothing.
func existingDataDir(cCtx *cli.Context, fsys vfs.FS) (string, error) {
	data, err := dataDir(cCtx)
	if err != nil {
		return "", err
	}
	if state, err := statDataDir(fsys, data); err == nil && state == dirStore {
		return data, nil
	}
	return "", noDataDir(fsys, dataSetting(cCtx))
}

// errNotEmpty is returned by checkCreate for a directory that holds files
// of something other than a kvtool store.
var errNotEmpty = errors.New("holds other files")

// checkCreate checks that a store may be created or opened at data: it is
// a kvtool data directory already, or an empty or missing directory whose
// parent exists. A store is never created among other files, nor with
// missing parents: both are usually a typo in --data.
func checkCreate(fsys vfs.FS, data setting) error {
	state, err := statDataDir(fsys, data.value)
	if err != nil {
		return failed(fmt.Errorf("data directory %s: %w", data, err), "")
	}
	switch state {
	case dirNoParent:
		parent := filepath.Dir(filepath.Clean(data.value))
		return failed(fmt.Errorf("no data directory at %s, and its parent %s does not exist either", data, parent),
			"check --data and $"+envData+"; if the path is right, create the parent first: mkdir -p "+shellQuote(parent))
	case dirNotDir:
		return failed(fmt.Errorf("%s is a file, not a data directory", data), "check --data and $"+envData)
	case dirOther:
		return failed(fmt.Errorf("refusing to create a store in %s: the directory %w and no %s or %s/", data, errNotEmpty, format.ManifestName, format.WALDir),
			"check --data and $"+envData+"; a new store goes in a missing or empty directory")
	}
	return nil
}
