package loopport

import (
	"net"
	"strconv"
	"testing"
)

// Free's ports come from below the ephemeral range (where a port-0
// listener or an outgoing connection could have taken them) and can be
// listened on.
func TestFreeBelowEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	if lo-lowest < 1000 {
		t.Skipf("the ephemeral range starts at %d: no room below it", lo)
	}
	seen := map[string]bool{}
	for range 200 {
		addr, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if host != "127.0.0.1" || port < lowest || port >= lo {
			t.Fatalf("Free() = %s; want 127.0.0.1 and a port in [%d, %d)", addr, lowest, lo)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("Free() = %s, which cannot be listened on: %v", addr, err)
		}
		ln.Close()
		if seen[addr] {
			t.Fatalf("Free() returned %s twice", addr)
		}
		seen[addr] = true
	}
}
