package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// snapDir is a data directory with a base checkpoint, two deltas and a WAL
// tail in several small segments, built by a real store.
type snapDir struct {
	data   string
	man    manifest.Manifest
	last   uint64            // applied index at the end
	hashes map[uint64]string // state hash after some indexes (base, chain end, last)
}

// newSnapDir builds a snapDir: 120 puts, compact, 60 puts, delta, 60 puts,
// delta, 40 puts.
func newSnapDir(t *testing.T) *snapDir {
	t.Helper()
	sd := &snapDir{data: filepath.Join(t.TempDir(), "data"), hashes: map[uint64]string{}}
	st, err := store.Open(store.Options{Dir: sd.data, Create: true, Shards: 4, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	steps := []struct {
		puts int
		step func(context.Context) error
	}{
		{120, func(ctx context.Context) error { _, err := st.Compact(ctx); return err }},
		{60, func(ctx context.Context) error { _, err := st.Delta(ctx); return err }},
		{60, func(ctx context.Context) error { _, err := st.Delta(ctx); return err }},
		{40, nil},
	}
	n := 0
	for _, s := range steps {
		for range s.puts {
			if _, err := st.Put(ctx, fmt.Sprintf("key:%03d", n%150), []byte(fmt.Sprintf("value %d", n))); err != nil {
				t.Fatal(err)
			}
			n++
		}
		snap := st.Snapshot()
		sd.hashes[snap.Index()] = format.FormatStateHash(snap.Hash())
		if s.step != nil {
			if err := s.step(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	sd.man, sd.last = st.CurrentManifest(), st.Snapshot().Index()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if sd.man.Base == nil || len(sd.man.Deltas) != 2 {
		t.Fatalf("unexpected manifest %+v", sd.man)
	}
	return sd
}

func (sd *snapDir) snap(name string) string { return filepath.Join(sd.data, format.SnapDir, name) }

func (sd *snapDir) segments(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, s := range segments(t, sd.data) {
		out = append(out, s.Path)
	}
	return out
}

func fileLen(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestVerifyCommandClean(t *testing.T) {
	sd := newSnapDir(t)
	stdout, stderr, code := run(t, "--data", sd.data, "verify")
	mustCode(t, code, exitOK, stdout, stderr)
	want := fmt.Sprintf("ok: %d files checked (manifest, 1 checkpoint, 2 deltas, %d segments); recovery reaches index %d\n",
		4+len(sd.segments(t)), len(sd.segments(t)), sd.last)
	if stdout != want || stderr != "" {
		t.Errorf("verify printed\n%q\n%q\nwant\n%q", stdout, stderr, want)
	}

	stdout, stderr, code = run(t, "--data", sd.data, "verify", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	var rep reportJSON
	mustJSON(t, stdout, &rep)
	if !rep.OK || rep.Faults != 0 || rep.AppliedIndex != sd.last || rep.SnapshotIndex != sd.man.SnapshotIndex() ||
		len(rep.Files) != 4+len(sd.segments(t)) || rep.Notes == nil {
		t.Errorf("verify --json: %s", stdout)
	}
	if stdout, _, _ = run(t, "--data", sd.data, "verify", "--quiet"); stdout != "" {
		t.Errorf("verify --quiet printed %q", stdout)
	}
}

// cliDamages damage a snapDir; each returns the file the fault must name.
var cliDamages = []struct {
	name   string
	damage func(t *testing.T, sd *snapDir) string
}{
	{"base byte", func(t *testing.T, sd *snapDir) string {
		p := sd.snap(sd.man.Base.Name)
		flipByte(t, p, fileLen(t, p)/2)
		return p
	}},
	{"delta byte", func(t *testing.T, sd *snapDir) string {
		p := sd.snap(sd.man.Deltas[1].Name)
		flipByte(t, p, fileLen(t, p)/2)
		return p
	}},
	{"manifest byte", func(t *testing.T, sd *snapDir) string {
		p := manifest.Path(sd.data)
		flipByte(t, p, fileLen(t, p)-5)
		return p
	}},
	{"segment byte", func(t *testing.T, sd *snapDir) string {
		segs := sd.segments(t)
		p := segs[len(segs)/2]
		flipByte(t, p, fileLen(t, p)/2)
		return p
	}},
	{"delta deleted", func(t *testing.T, sd *snapDir) string {
		p := sd.snap(sd.man.Deltas[0].Name)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		return p
	}},
	{"first segment deleted", func(t *testing.T, sd *snapDir) string {
		segs := sd.segments(t)
		if err := os.Remove(segs[0]); err != nil {
			t.Fatal(err)
		}
		return segs[1]
	}},
}

func TestVerifyCommandDamage(t *testing.T) {
	for _, d := range cliDamages {
		t.Run(d.name, func(t *testing.T) {
			sd := newSnapDir(t)
			path := d.damage(t, sd)
			stdout, stderr, code := run(t, "--data", sd.data, "verify")
			mustCode(t, code, exitDamage, stdout, stderr)
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if !strings.HasPrefix(lines[0], "FILE ") || !strings.Contains(stdout, "\n"+path+" ") {
				t.Errorf("verify does not name %s:\n%s", path, stdout)
			}
			if !strings.Contains(lines[len(lines)-1], "fault") || !hasErrorLine(stderr, "verify: ") || !strings.Contains(stderr, "hint: ") {
				t.Errorf("no count or hint:\n%s%s", stdout, stderr)
			}

			stdout, stderr, code = run(t, "--data", sd.data, "verify", "--json")
			mustCode(t, code, exitDamage, stdout, stderr)
			var rep reportJSON
			mustJSON(t, stdout, &rep)
			found := false
			for _, f := range rep.Files {
				for _, p := range f.Problems {
					found = found || (p.Path == path && f.Path == path && !f.OK)
				}
			}
			if rep.OK || rep.Faults == 0 || !found {
				t.Errorf("verify --json does not name %s:\n%s", path, stdout)
			}
		})
	}
}

// TestMaintReadOnlyCommandsChangeNothing runs every read-only command of
// this issue on a clean and on a damaged directory: each leaves every byte
// as it was, and none takes the lock (they run while a store holds it).
func TestMaintReadOnlyCommandsChangeNothing(t *testing.T) {
	clean, damaged := newSnapDir(t), newSnapDir(t)
	cliDamages[1].damage(t, damaged)
	cliDamages[3].damage(t, damaged)
	for _, sd := range []*snapDir{clean, damaged} {
		holder, err := vfs.Default.Lock(filepath.Join(sd.data, format.LockName))
		if err != nil {
			t.Fatal(err)
		}
		before := dirtest.Snapshot(t, sd.data)
		for _, cmd := range [][]string{
			{"verify"}, {"inspect"}, {"inspect", "--no-state"}, {"replay"},
			{"replay", "--to-index", fmt.Sprint(sd.man.Base.Index + 5)}, {"replay", "--to-index", "1"},
			{"checkpoint", "list"}, {"checkpoint", "inspect", sd.man.Base.Name}, {"checkpoint", "verify"},
			{"checkpoint", "verify", sd.man.Base.Name}, {"delta", "list"}, {"delta", "verify"},
		} {
			for _, mode := range [][]string{nil, {"--json"}, {"--quiet"}} {
				args := append(append([]string{"--data", sd.data}, mode...), cmd...)
				stdout, stderr, code := run(t, args...)
				if code != exitOK && code != exitDamage && code != exitFailure || strings.Contains(stderr, "locked") {
					t.Errorf("%v: exit %d\n%s%s", args, code, stdout, stderr)
				}
				dirtest.RequireUnchanged(t, sd.data, before, strings.Join(args, " "))
			}
		}
		holder.Close()
	}
}

func TestMaintCommandsMissingDataDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing")
	for _, cmd := range [][]string{
		{"verify"}, {"inspect"}, {"replay"}, {"checkpoint", "list"}, {"checkpoint", "verify"},
		{"delta", "list"}, {"delta", "verify"}, {"checkpoint", "create"}, {"delta", "create"}, {"delta", "merge"}, {"wal", "compact"},
	} {
		stdout, stderr, code := run(t, append([]string{"--data", missing}, cmd...)...)
		mustCode(t, code, exitFailure, stdout, stderr)
		if !strings.Contains(stderr, missing) {
			t.Errorf("%v: stderr does not name the directory: %s", cmd, stderr)
		}
	}
	assertNoFiles(t, filepath.Dir(missing))
}

// TestVerifyHintClusterMember: damaged snapshot files in a cluster
// member's directory (it holds raft/) are rebuilt from the peers, never
// restored or replayed in place; elsewhere the hint stays the backup one.
func TestVerifyHintClusterMember(t *testing.T) {
	sd := newSnapDir(t)
	cliDamages[0].damage(t, sd) // base byte
	stdout, stderr, code := run(t, "--data", sd.data, "verify")
	mustCode(t, code, exitDamage, stdout, stderr)
	if !strings.Contains(stderr, "from a backup") || strings.Contains(stderr, "cluster member") {
		t.Errorf("hint of a single node's directory:\n%s", stderr)
	}
	if err := os.Mkdir(filepath.Join(sd.data, format.RaftDir), 0o755); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = run(t, "--data", sd.data, "verify")
	mustCode(t, code, exitDamage, stdout, stderr)
	if !strings.Contains(stderr, "cluster member's directory: do not start it again") || !strings.Contains(stderr, "cluster replace") ||
		strings.Contains(stderr, "from a backup") {
		t.Errorf("hint of a cluster member's directory:\n%s", stderr)
	}
}
