// Package loopport picks loopback TCP ports for processes that must be
// told their address before they start (a cluster member's peer address is
// named in every member's --cluster before any of them runs) and that bind
// it again after a restart.
//
// A port learned by listening on 127.0.0.1:0 and closing comes from the
// kernel's ephemeral range, from which every outgoing connection and every
// other port-0 listener on the machine also draws, so a busy machine can
// hand it to someone else before the member binds it. Free picks outside
// that range instead, where only a process naming the port explicitly can
// collide, checks that it can be bound now, and never returns a port twice
// in one process (two members picked before either binds would otherwise
// be able to get the same one).
package loopport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the lowest port Free picks: above the well-known and most
// registered service ports.
const lowest = 20000

var (
	mu    sync.Mutex
	given = map[int]bool{} // ports Free returned in this process
)

// Free returns "127.0.0.1:PORT" for a port below the ephemeral range that
// nothing listens on now. When the range leaves no room below it (or is
// unknown and the default leaves none), it falls back to a port-0 pick.
func Free() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	lo := ephemeralLow()
	if lo-lowest >= 1000 {
		for range 64 {
			port := lowest + rand.IntN(lo-lowest)
			if given[port] {
				continue
			}
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				continue // taken: try another
			}
			ln.Close()
			given[port] = true
			return addr, nil
		}
	}
	for range 64 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("loopport: no free loopback port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !given[port] {
			given[port] = true
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
		}
	}
	return "", fmt.Errorf("loopport: no loopback port this process has not handed out already")
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// ip_local_port_range; 32768, its default, elsewhere or when unreadable).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 0 || lo > 65535 {
		return 32768
	}
	return lo
}
