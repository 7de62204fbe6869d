package cluster

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// FuzzReadMarker: whatever bytes a JOIN or REMOVED file holds, reading it
// (a member's start, kvtool verify and inspect all do) never panics, and
// refuses what is not a marker with a corruption error naming the file.
func FuzzReadMarker(f *testing.F) {
	good := vfs.NewMem()
	if err := WriteJoin(good, "/data", JoinRecord{ClusterID: 7, Self: MemberRecord{Name: "n4", ID: 4, PeerAddr: "127.0.0.1:1"}, CatchUp: 9}); err != nil {
		f.Fatal(err)
	}
	join, err := good.ReadFile(filepath.Join("/data", RaftDir, JoinName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(join)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fs := vfs.NewMem()
		dir := filepath.Join("/data", RaftDir)
		if err := fs.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{JoinName, RemovedName} {
			if err := format.WriteFileAtomic(fs, filepath.Join(dir, name), b); err != nil {
				t.Fatal(err)
			}
		}
		for _, err := range []error{
			func() error { _, _, err := ReadJoin(fs, "/data"); return err }(),
			checkRemoved(fs, dir),
		} {
			if err != nil && !errors.Is(err, ErrRemoved) && !errors.Is(err, format.ErrCorruption) && !errors.Is(err, format.ErrUnknownVersion) {
				t.Fatalf("a marker of %d bytes: %v, want a corruption error", len(b), err)
			}
		}
		if _, err := InspectRaft(fs, "/data"); err != nil {
			t.Fatalf("inspect of a marker of %d bytes: %v", len(b), err)
		}
	})
}
