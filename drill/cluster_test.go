package drill

import (
	"bufio"
	"context"
	"io"
	"maps"
	"net"
	"strings"
	"testing"
	"time"
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
