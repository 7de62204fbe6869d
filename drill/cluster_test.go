package drill

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/internal/sharedtmp"
)

// echoServer answers every line with the same line, until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line through c and reads the echo; an error means the
// link did not carry it.
func roundTrip(c net.Conn, r *bufio.Reader, s string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, s+"\n"); err != nil {
		return err
	}
	got, err := r.ReadString('\n')
	if err == nil && got != s+"\n" {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// dialThrough opens a connection through addr and reports whether a line
// makes the round trip.
func dialThrough(t *testing.T, addr string) (net.Conn, *bufio.Reader, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	return c, r, roundTrip(c, r, "hello")
}

// TestLinkCutAndHeal: a link carries bytes, a cut breaks the connection
// open through it and refuses new ones, a heal lets new ones through.
func TestLinkCutAndHeal(t *testing.T) {
	l, err := newLink(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	// A link that failed to cut still forwards, and Close would wait on it.
	t.Cleanup(func() {
		if !t.Failed() {
			l.Close()
		}
	})
	c, r, err := dialThrough(t, l.Addr())
	if err != nil {
		t.Fatalf("through a whole link: %v", err)
	}
	l.Cut()
	if err := roundTrip(c, r, "after the cut"); err == nil {
		t.Fatal("a connection open through the link still carries bytes after the cut")
	}
	if _, _, err := dialThrough(t, l.Addr()); err == nil {
		t.Fatal("a new connection through a cut link carries bytes")
	}
	l.Heal()
	if _, _, err := dialThrough(t, l.Addr()); err != nil {
		t.Fatalf("through a healed link: %v", err)
	}
}

// TestNetworkIsolate: isolating a node cuts exactly the links to and from
// it; the cluster map each node gets names its own real address and a
// link for every other node.
func TestNetworkIsolate(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	peer := map[string]string{}
	for _, n := range names {
		peer[n] = echoServer(t)
	}
	nw, err := newNetwork(names, peer)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	m := nw.clusterMap("n2", names, peer)
	want := "n1=" + nw.links["n2"]["n1"].Addr() + ",n2=" + peer["n2"] + ",n3=" + nw.links["n2"]["n3"].Addr()
	if m != want {
		t.Errorf("n2's cluster map is %s, want %s", m, want)
	}
	nw.isolate("n1", false)
	for from, links := range nw.links {
		for to, l := range links {
			_, _, err := dialThrough(t, l.Addr())
			if cut := from == "n1" || to == "n1"; cut != (err != nil) {
				t.Errorf("link %s->%s: cut %v, but a round trip gave %v", from, to, cut, err)
			}
		}
	}
	nw.healAll()
	for from, links := range nw.links {
		for to, l := range links {
			if _, _, err := dialThrough(t, l.Addr()); err != nil {
				t.Errorf("link %s->%s after the heal: %v", from, to, err)
			}
		}
	}
}

// TestCheckCopies: the checker over three copies passes three correct
// copies and names each copy that lost an acknowledged transfer or applied
// one twice.
func TestCheckCopies(t *testing.T) {
	b, good := plantedBank(t)
	names := []string{"n1", "n2", "n3"}
	nolog := func(string, ...any) {}
	ctx := context.Background()
	lost, fails := checkCopies(ctx, b.All(), names, []State{good, maps.Clone(good), maps.Clone(good)}, nolog)
	if lost != 0 || len(fails) != 0 {
		t.Fatalf("three correct copies: %d lost, %v", lost, fails)
	}
	missing := maps.Clone(good)
	id := ackedID(b, 10)
	delete(missing, MarkerKey(id))
	twice := maps.Clone(good)
	x := b.tried[ackedID(b, 3)]
	twice[AccountKey(x.From)] = add(twice[AccountKey(x.From)], -x.Amount)
	twice[AccountKey(x.To)] = add(twice[AccountKey(x.To)], x.Amount)
	lost, fails = checkCopies(ctx, b.All(), names, []State{good, missing, twice}, nolog)
	if lost != 1 {
		t.Errorf("one copy lost one transfer: reported %d lost", lost)
	}
	if len(fails) != 2 || !strings.Contains(fails[0], "node n2") || !strings.Contains(fails[1], "node n3") {
		t.Errorf("want one failure naming n2 and one naming n3, got %q", fails)
	}
}

// kvtoolExe builds the kvtool binary the membership drills start, once per
// test binary.
var kvtoolExe = sync.OnceValues(func() (string, error) {
	dir, err := sharedtmp.Dir("kvtool-drill-exe-")
	if err != nil {
		return "", err
	}
	exe := filepath.Join(dir, "kvtool")
	out, err := exec.Command("go", "build", "-o", exe, "../cmd/kvtool").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return exe, nil
})

// runMembershipDrill runs drill d once at the short CI duration.
func runMembershipDrill(t *testing.T, d Drill) Result {
	t.Helper()
	if testing.Short() {
		t.Skip("starts four real cluster processes; skipped with -short")
	}
	exe, err := kvtoolExe()
	if err != nil {
		t.Fatal(err)
	}
	keep := t.TempDir()
	res, err := Run(t.Context(), []Drill{d}, Options{Seed: 7, Duration: 1500 * time.Millisecond, Exe: exe, Keep: keep})
	if err != nil || len(res) != 1 {
		t.Fatalf("run %s: %v", d.Name, err)
	}
	return res[0]
}

// TestMembershipDrills: hot-join, replace-node and corrupt-snapshot-cluster
// pass on the real binary, with something acknowledged, nothing lost, and
// the new member promoted; hot-join injected each of its faults (two cuts
// of the snapshot stream, a SIGKILL while it streams).
func TestMembershipDrills(t *testing.T) {
	for _, c := range []struct {
		d      Drill
		timing string
	}{{hotJoin, "promoted"}, {replaceNode, "promoted"}, {corruptSnapshotCluster, "replaced"}} {
		t.Run(c.d.Name, func(t *testing.T) {
			r := runMembershipDrill(t, c.d)
			if r.Verdict != Pass || r.Lost != 0 || r.Acked == 0 {
				t.Fatalf("verdict %s, %d acknowledged, %d lost: %v (evidence: %s)", r.Verdict, r.Acked, r.Lost, r.Failures, r.Dir)
			}
			if _, ok := r.Timings[c.timing]; !ok {
				t.Errorf("no %s timing in %v", c.timing, r.Timings)
			}
			notes := strings.Join(r.Notes, "; ")
			if c.d.Name == hotJoin.Name {
				for _, want := range []string{"cut 1 at", "cut 2 at", "SIGKILL at", "sent again"} {
					if !strings.Contains(notes, want) {
						t.Errorf("the hot-join's notes do not say %q: %s", want, notes)
					}
				}
				if strings.Contains(notes, "not injected") {
					t.Errorf("the hot-join left a fault out: %s", notes)
				}
			}
			t.Logf("%d acknowledged, timings %v; %s", r.Acked, r.Timings, notes)
		})
	}
}

// TestMembershipDrillsCatchPlantedFault: the drills fail when their
// recovery is done wrong or their fault is missing: the joiner restarted
// on an empty directory (not a resume), the members' logs left whole (the
// joiner needs no snapshot, so nothing could be cut), the replaced member
// never removed, no byte flipped (verify finds nothing, the member
// starts), the damaged member never replaced.
func TestMembershipDrillsCatchPlantedFault(t *testing.T) {
	for _, c := range []struct {
		d     Drill
		plant string
		want  string
	}{
		{hotJoin, plantRestartEmpty, "did not resume"},
		{hotJoin, plantNoCompact, "caught up from the log"},
		{replaceNode, plantSkipRemove, "the members are"},
		{corruptSnapshotCluster, plantNoFlip, "kvtool verify does not name"},
		{corruptSnapshotCluster, plantSkipReplace, "the members are"},
	} {
		t.Run(c.d.Name+"/"+c.plant, func(t *testing.T) {
			plant = c.plant
			defer func() { plant = "" }()
			r := runMembershipDrill(t, c.d)
			if r.Verdict != Fail || !strings.Contains(strings.Join(r.Failures, "; "), c.want) {
				t.Fatalf("with %s planted: verdict %s, failures %v; want a failure saying %q", c.plant, r.Verdict, r.Failures, c.want)
			}
			t.Logf("with %s planted: %v", c.plant, r.Failures)
		})
	}
}
