package cluster

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// ErrInstallPending is wrapped by CheckInstall when a data directory holds
// a snapshot install that a crash interrupted after its commit point.
var ErrInstallPending = errors.New("kvtool/cluster: a snapshot install is pending")

// CheckInstall reports, for tools that read a member's data directory
// without starting it (kvtool verify, inspect, query --data), whether a
// snapshot install is pending there: the raft state records snapshot T
// (the install's commit point) and the staged store at T still waits in
// DATA/raft/incoming, because the member crashed before it finished
// installing. Until a start finishes the install, the store alone shows
// the state from before the snapshot, or T's state over a WAL that does
// not reach it yet: neither is what the member holds. The error wraps
// ErrInstallPending and says what to do; nil when nothing is pending
// (also for a directory that is no cluster member's, or whose raft state
// cannot be read).
func CheckInstall(fs vfs.FS, dataDir string) error {
	if fs == nil {
		fs = vfs.Default
	}
	raftDir := filepath.Join(dataDir, RaftDir)
	st, err := loadState(fs, raftDir)
	if err != nil {
		return nil // no raft state; or a damaged one, which the member's start reports: the tool goes on
	}
	if st.SnapIndex == 0 {
		return nil
	}
	staged, ok := stagedStore(fs, filepath.Join(raftDir, IncomingDir))
	if !ok {
		return nil
	}
	s, err := store.Open(store.Options{FS: fs, Dir: staged, ReadOnly: true})
	if err != nil {
		return nil // not a complete staged store: a transfer still in progress, not an install
	}
	idx := s.Snapshot().Index()
	s.Close()
	if idx != st.SnapIndex {
		return nil // received, but raft never installed it: the store is what the member holds
	}
	return fmt.Errorf("%w in %s: the raft state says snapshot %d is installed, and its staged copy is still in %s; start the member once (kvtool serve with its usual flags: it finishes the install at start), then run this again",
		ErrInstallPending, dataDir, st.SnapIndex, staged)
}

// stagedStore returns the directory under incoming that holds a complete
// store (its MANIFEST), as loadStaged finds it.
func stagedStore(fs vfs.FS, incoming string) (string, bool) {
	names, err := fs.List(incoming)
	if err != nil {
		return "", false
	}
	for _, name := range names {
		if strings.HasSuffix(name, ".old") {
			continue
		}
		if _, err := fs.Stat(filepath.Join(incoming, name, format.ManifestName)); err == nil {
			return filepath.Join(incoming, name), true
		}
	}
	return "", false
}
