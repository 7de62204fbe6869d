package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
)

// checkHostPort checks that value, the value of --flag, is HOST:PORT (HOST
// may be empty for a listener: every interface).
func checkHostPort(cCtx *cli.Context, flag, value string) error {
	if value == "-" && (flag == "to" || flag == "from") {
		return nil
	}
	host, port, err := net.SplitHostPort(value)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil || strings.ContainsAny(host, "/ ") {
		return usageErrorf(cCtx, "--%s %s needs HOST:PORT, e.g. 127.0.0.1:7070", flag, value)
	}
	return nil
}

// checkAddr checks a server address: HOST:PORT, or http://HOST:PORT.
func checkAddr(cCtx *cli.Context, addr setting) error {
	v := strings.TrimRight(addr.value, "/")
	if rest, ok := strings.CutPrefix(v, "http://"); ok {
		v = rest
	} else if rest, ok := strings.CutPrefix(v, "https://"); ok {
		v = rest
	}
	if err := checkHostPort(cCtx, flagAddr, v); err != nil {
		if !addr.explicit {
			return usageErrorf(cCtx, "%s %s needs HOST:PORT, e.g. 127.0.0.1:7070", addr.from, addr.value)
		}
		return err
	}
	return nil
}

// describePeer says what answers at addr, for a peer that did not speak
// the kvtool transfer protocol: a kvtool HTTP API, another HTTP server, or
// something else. It asks over HTTP, for at most a few seconds.
func describePeer(ctx context.Context, addr string) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c := client.New(addr)
	defer c.Close()
	_, err := c.Status(ctx)
	var nk *client.NotKvtoolError
	switch {
	case err == nil:
		return addr + " is a kvtool HTTP API (kvtool serve --listen)"
	case errors.As(err, &nk) && nk.Status != 0:
		return addr + " is an HTTP server, not kvtool (" + nk.What + ")"
	}
	return addr + " does not speak the kvtool transfer protocol"
}

// helloTimeout bounds how long the end that dials a transfer peer waits
// for its first bytes: a kvtool peer sends them at once, something else
// (an HTTP server waits for a request) may never.
var helloTimeout = 5 * time.Second

// helloConn is a connection to a transfer peer that remembers the first
// bytes the peer sent, so that a failed session can tell a kvtool peer that
// went away from something that is not a kvtool transfer port at all.
type helloConn struct {
	net.Conn
	mu    sync.Mutex
	first []byte // the peer's first bytes, up to the magic's length
}

// newHelloConn wraps conn; with wait, the first read fails after
// helloTimeout if the peer sent nothing.
func newHelloConn(conn net.Conn, wait bool) *helloConn {
	if wait {
		conn.SetReadDeadline(time.Now().Add(helloTimeout))
	}
	return &helloConn{Conn: conn}
}

func (c *helloConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.first) < len(format.MagicTransfer) && n > 0 {
		if len(c.first) == 0 {
			c.Conn.SetReadDeadline(time.Time{})
		}
		c.first = append(c.first, p[:min(n, len(format.MagicTransfer)-len(c.first))]...)
	}
	return n, err
}

// wrongPeer reports whether the peer is not a kvtool transfer end: it sent
// nothing, or bytes that do not start like the transfer protocol.
func (c *helloConn) wrongPeer() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !strings.HasPrefix(format.MagicTransfer, string(c.first)) || len(c.first) == 0
}

// wrongPeerError is a transfer session with something that is not a kvtool
// transfer end; retrying cannot help.
type wrongPeerError struct{ msg string }

func (e *wrongPeerError) Error() string { return e.msg }

// dialError explains a failure to connect to a transfer receiver at addr.
// Nothing was sent, so nothing can be resumed.
func dialError(addr string, err error) error {
	hint := "is `kvtool transfer recv --listen` running there? --to needs its address"
	switch {
	case errors.Is(err, context.Canceled):
		return err // interrupted before it connected: nothing to say about the receiver
	case errors.Is(err, syscall.ECONNREFUSED):
		return failed(fmt.Errorf("connection refused at %s: nothing listens there", addr), hint)
	}
	return failed(fmt.Errorf("connect to %s: %w", addr, inner(err)), hint)
}

// inner is the error err wraps (a *net.OpError's cause, a *PathError's
// errno), or err: the part of a Go error that is in the user's terms.
func inner(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// serverError gives a failure to reach a kvtool server (nothing answers,
// or something that is not kvtool does) its exit code and hint; nil for
// other errors.
func serverError(err error) error {
	switch {
	case errors.Is(err, client.ErrNoServer):
		return failed(err, "is `kvtool serve` running there? Without --addr (and "+envAddr+") the command opens --data directly")
	case errors.Is(err, client.ErrNotKvtool):
		return failed(err, "check --addr and $"+envAddr+": they name the HTTP address a kvtool serve listens on (its --listen)")
	}
	return nil
}
