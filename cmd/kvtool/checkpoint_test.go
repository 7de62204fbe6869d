package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/dirtest"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

func TestCheckpointListInspectVerify(t *testing.T) {
	sd := newSnapDir(t)
	stdout, stderr, code := run(t, "--data", sd.data, "checkpoint", "list", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	var list struct {
		SnapDir     string           `json:"snap_dir"`
		Checkpoints []checkpointJSON `json:"checkpoints"`
	}
	mustJSON(t, stdout, &list)
	if len(list.Checkpoints) != 1 || !list.Checkpoints[0].Base || list.Checkpoints[0].Name != sd.man.Base.Name ||
		list.Checkpoints[0].Index != sd.man.Base.Index || list.Checkpoints[0].StateHash != sd.hashes[sd.man.Base.Index] {
		t.Errorf("checkpoint list --json: %s", stdout)
	}
	stdout, stderr, code = run(t, "--data", sd.data, "checkpoint", "list")
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.HasPrefix(stdout, "CHECKPOINT ") || !strings.Contains(stdout, sd.man.Base.Name+" ") || !strings.HasSuffix(stdout, "  base\n") {
		t.Errorf("checkpoint list:\n%s", stdout)
	}

	// inspect takes a bare name from DATA/snap, or a path.
	for _, arg := range []string{sd.man.Base.Name, sd.snap(sd.man.Base.Name)} {
		stdout, stderr, code = run(t, "--data", sd.data, "checkpoint", "inspect", "--json", arg)
		mustCode(t, code, exitOK, stdout, stderr)
		var c checkpointJSON
		mustJSON(t, stdout, &c)
		if c.Index != sd.man.Base.Index || c.Keys != 120 || c.Term != 1 || c.Size != sd.man.Base.Size || c.Checksum != hex16(sd.man.Base.Checksum) {
			t.Errorf("checkpoint inspect %s: %s", arg, stdout)
		}
	}
	stdout, stderr, code = run(t, "--data", sd.data, "checkpoint", "inspect")
	mustCode(t, code, exitUsage, stdout, stderr)
	stdout, stderr, code = run(t, "--data", sd.data, "checkpoint", "inspect", "nothing.ckpt")
	mustCode(t, code, exitFailure, stdout, stderr)

	stdout, stderr, code = run(t, "--data", sd.data, "checkpoint", "verify")
	mustCode(t, code, exitOK, stdout, stderr)
	if stdout != "ok: 2 files checked (manifest, 1 checkpoint)\n" {
		t.Errorf("checkpoint verify: %q", stdout)
	}

	// Damage in the header is found by inspect; in a block by verify only.
	base := sd.snap(sd.man.Base.Name)
	flipByte(t, base, fileLen(t, base)/2)
	stdout, stderr, code = run(t, "--data", sd.data, "checkpoint", "verify", "--json")
	mustCode(t, code, exitDamage, stdout, stderr)
	var rep reportJSON
	mustJSON(t, stdout, &rep)
	if rep.OK || rep.Files[1].Path != base || rep.Files[1].OK || rep.Files[1].Problems[0].Offset <= 0 {
		t.Errorf("checkpoint verify of a damaged base: %s", stdout)
	}
	flipByte(t, base, 20)
	stdout, stderr, code = run(t, "--data", sd.data, "checkpoint", "inspect", sd.man.Base.Name)
	mustCode(t, code, exitDamage, stdout, stderr)
	if !hasErrorLine(stderr, base) {
		t.Errorf("checkpoint inspect of a damaged header: %s", stderr)
	}
}

func TestDeltaListVerify(t *testing.T) {
	sd := newSnapDir(t)
	stdout, stderr, code := run(t, "--data", sd.data, "delta", "list", "--json")
	mustCode(t, code, exitOK, stdout, stderr)
	var list struct {
		Base   string      `json:"base"`
		Deltas []deltaJSON `json:"deltas"`
	}
	mustJSON(t, stdout, &list)
	if list.Base != sd.man.Base.Name || len(list.Deltas) != 2 {
		t.Fatalf("delta list --json: %s", stdout)
	}
	for i, d := range list.Deltas {
		ref := sd.man.Deltas[i]
		if !d.InChain || d.Name != ref.Name || d.FromIndex != ref.FromIndex || d.ToIndex != ref.Index || d.Keys != 60 || d.Checksum != hex16(ref.Checksum) {
			t.Errorf("delta %d: %+v, manifest %+v", i, d, ref)
		}
	}
	if list.Deltas[0].Parent != sd.man.Base.Name || list.Deltas[1].Parent != sd.man.Deltas[0].Name {
		t.Errorf("parents: %+v", list.Deltas)
	}
	stdout, stderr, code = run(t, "--data", sd.data, "delta", "list")
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.Contains(stdout, "chain 1/2\n") || !strings.Contains(stdout, "chain 2/2\n") {
		t.Errorf("delta list:\n%s", stdout)
	}

	stdout, stderr, code = run(t, "--data", sd.data, "delta", "verify")
	mustCode(t, code, exitOK, stdout, stderr)
	if stdout != "ok: 4 files checked (manifest, 1 checkpoint, 2 deltas)\n" {
		t.Errorf("delta verify: %q", stdout)
	}
	p := sd.snap(sd.man.Deltas[0].Name)
	flipByte(t, p, fileLen(t, p)/2)
	stdout, stderr, code = run(t, "--data", sd.data, "delta", "verify")
	mustCode(t, code, exitDamage, stdout, stderr)
	if !strings.Contains(stdout, "\n"+p+" ") || !hasErrorLine(stderr, "delta verify: ") {
		t.Errorf("delta verify of a damaged delta:\n%s%s", stdout, stderr)
	}
}

// writeKeys puts n keys through the CLI-independent store API.
func writeKeys(t *testing.T, data string, from, n int) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := from; i < from+n; i++ {
		if _, err := st.Put(context.Background(), fmt.Sprintf("k%04d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
}

// mustNotCreate decodes a {"created": false, "reason"} document and returns
// the reason.
func mustNotCreate(t *testing.T, stdout string) string {
	t.Helper()
	var r notCreatedJSON
	mustJSON(t, stdout, &r)
	if r.Created || r.Reason == "" {
		t.Errorf("want created false and a reason: %s", stdout)
	}
	return r.Reason
}

func TestMaintenanceOnData(t *testing.T) {
	data := smallDataDir(t)
	a := func(args ...string) []string { return append([]string{"--data", data}, args...) }

	stdout, stderr, code := run(t, a("delta", "create", "--json")...)
	mustCode(t, code, exitOK, stdout, stderr)
	mustNotCreate(t, stdout)

	writeKeys(t, data, 0, 30)
	stdout, stderr, code = run(t, a("delta", "create", "--json")...)
	mustCode(t, code, exitOK, stdout, stderr)
	var d deltaCreatedJSON
	mustJSON(t, stdout, &d)
	if !d.Created || d.DeltaResult == nil || d.FromIndex != 0 || d.ToIndex != 30 || d.Keys != 30 || d.Parent != "" {
		t.Errorf("delta create: %s", stdout)
	}
	stdout, stderr, code = run(t, a("delta", "merge")...)
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.HasPrefix(stdout, "merged checkpoint written: "+filepath.Join(data, format.SnapDir, format.CheckpointName(30))+" at index 30: 30 keys") {
		t.Errorf("delta merge: %q", stdout)
	}
	stdout, stderr, code = run(t, a("delta", "merge")...)
	mustCode(t, code, exitOK, stdout, stderr)
	if stdout != "nothing to do: the manifest has no deltas to merge\n" {
		t.Errorf("delta merge of no deltas: %q", stdout)
	}
	stdout, stderr, code = run(t, a("checkpoint", "create", "--json")...)
	mustCode(t, code, exitOK, stdout, stderr)
	mustNotCreate(t, stdout)

	writeKeys(t, data, 30, 10)
	stdout, stderr, code = run(t, a("checkpoint", "create", "--json")...)
	mustCode(t, code, exitOK, stdout, stderr)
	var c checkpointCreatedJSON
	mustJSON(t, stdout, &c)
	if !c.Created || c.CheckpointResult == nil || c.Index != 40 || c.Keys != 40 || len(c.StateHash) != 16 {
		t.Errorf("checkpoint create: %s", stdout)
	}
	stdout, stderr, code = run(t, a("checkpoint", "create", "-q")...)
	mustCode(t, code, exitOK, stdout, stderr)

	stdout, stderr, code = run(t, a("wal", "compact", "--json")...)
	mustCode(t, code, exitOK, stdout, stderr)
	var cr client.CompactResult
	mustJSON(t, stdout, &cr)
	if cr.Checkpoint != nil || cr.WALFirstIndex != 41 || len(cr.RemovedFiles) != 2 {
		t.Errorf("wal compact: %s", stdout)
	}
	writeKeys(t, data, 40, 5)
	stdout, stderr, code = run(t, a("wal", "compact")...)
	mustCode(t, code, exitOK, stdout, stderr)
	for _, want := range []string{"checkpoint written: ", " at index 45: 45 keys", "the WAL is needed from index 46\n", "removed " + filepath.Join(data, format.SnapDir, format.CheckpointName(40))} {
		if !strings.Contains(stdout, want) {
			t.Errorf("wal compact does not print %q:\n%s", want, stdout)
		}
	}

	stdout, stderr, code = run(t, a("verify")...)
	mustCode(t, code, exitOK, stdout, stderr)
}

func TestMaintenanceLocked(t *testing.T) {
	data := smallDataDir(t)
	st, err := store.Open(store.Options{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before := dirtest.Snapshot(t, data)
	for _, cmd := range [][]string{{"checkpoint", "create"}, {"delta", "create"}, {"delta", "merge"}, {"wal", "compact"}} {
		stdout, stderr, code := run(t, append([]string{"--data", data}, cmd...)...)
		mustCode(t, code, exitFailure, stdout, stderr)
		if !strings.Contains(stderr, "--addr") {
			t.Errorf("%v on a held directory: %s", cmd, stderr)
		}
	}
	// The store holding the directory prepares its spare segment in the
	// background (wal/next.wal.tmp-*), whenever it likes: that file is
	// the store's, not the commands'.
	spare := func(p string) bool { return strings.HasPrefix(filepath.Base(p), "next.wal") }
	dirtest.RequireUnchangedExcept(t, data, before, "maintenance on a held directory", spare)
}

func TestMaintenanceOnAddr(t *testing.T) {
	st, err := store.Open(store.Options{Dir: smallDataDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(st, server.Options{}))
	t.Cleanup(func() { srv.Close(); st.Close() })
	a := func(args ...string) []string { return append(args, "--addr", srv.Listener.Addr().String()) }

	stdout, stderr, code := run(t, a("delta", "create")...)
	mustCode(t, code, exitOK, stdout, stderr)
	if !strings.HasPrefix(stdout, "nothing to do: ") {
		t.Errorf("delta create of an empty store: %q", stdout)
	}
	for i := range 20 {
		if _, err := st.Put(context.Background(), fmt.Sprint("k", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, code = run(t, a("delta", "create", "--json")...)
	mustCode(t, code, exitOK, stdout, stderr)
	var d deltaCreatedJSON
	mustJSON(t, stdout, &d)
	if !d.Created || d.ToIndex != 20 {
		t.Errorf("delta create --addr: %s", stdout)
	}
	stdout, stderr, code = run(t, a("checkpoint", "create", "--json")...)
	mustCode(t, code, exitOK, stdout, stderr)
	var c checkpointCreatedJSON
	mustJSON(t, stdout, &c)
	if !c.Created || c.Index != 20 || c.StateHash != format.FormatStateHash(st.Snapshot().Hash()) {
		t.Errorf("checkpoint create --addr: %s", stdout)
	}
	stdout, stderr, code = run(t, a("delta", "merge", "--json")...)
	mustCode(t, code, exitOK, stdout, stderr)
	mustNotCreate(t, stdout)
	stdout, stderr, code = run(t, a("wal", "compact", "--json")...)
	mustCode(t, code, exitOK, stdout, stderr)
	var cr client.CompactResult
	mustJSON(t, stdout, &cr)
	if cr.WALFirstIndex != 21 {
		t.Errorf("wal compact --addr: %s", stdout)
	}
	rep, err := datadirVerify(st.Dir())
	if err != nil || !rep {
		t.Errorf("verify after maintenance over HTTP: %v", err)
	}

	stdout, stderr, code = run(t, "checkpoint", "create", "--addr", "127.0.0.1:1")
	mustCode(t, code, exitFailure, stdout, stderr)
	if !strings.Contains(stderr, "kvtool serve") {
		t.Errorf("no server: %s", stderr)
	}
}

// datadirVerify runs kvtool verify on data and reports whether it is clean.
func datadirVerify(data string) (bool, error) {
	var out, errw strings.Builder
	code := execute(context.Background(), []string{"kvtool", "--data", data, "verify"},
		env{stdin: strings.NewReader(""), stdout: &out, stderr: &errw, fs: vfs.Default})
	if code != exitOK {
		return false, fmt.Errorf("exit %d: %s%s", code, out.String(), errw.String())
	}
	return true, nil
}
