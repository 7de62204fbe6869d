package transfer

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/kvtool/kvtool/format"
)

// dialTimeout bounds connecting to a peer.
const dialTimeout = 10 * time.Second

// Dial connects to the transfer peer at addr over TCP, or over TLS when
// cfg is set (its ServerName defaults to addr's host).
func Dial(ctx context.Context, addr string, cfg *tls.Config) (net.Conn, error) {
	d := &net.Dialer{Timeout: dialTimeout}
	if cfg == nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	c := cfg.Clone()
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(addr)
	}
	return (&tls.Dialer{NetDialer: d, Config: c}).DialContext(ctx, "tcp", addr)
}

// Listen listens for transfer peers on addr over TCP, or over TLS when cfg
// is set.
func Listen(addr string, cfg *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || cfg == nil {
		return ln, err
	}
	return tls.NewListener(ln, cfg), nil
}

// HelloConn is a connection to a transfer peer that remembers the first
// bytes the peer sent, so that a failed session can tell a kvtool peer
// that went away from something that is not a kvtool transfer port at all
// (an HTTP server, say). Its methods are safe for concurrent use.
type HelloConn struct {
	net.Conn
	mu    sync.Mutex
	first []byte // the peer's first bytes, up to the magic's length
}

// WatchHello wraps conn. With wait > 0 the first read fails after wait if
// the peer sent nothing: a kvtool peer speaks at once, an HTTP server
// waits for a request and may never.
func WatchHello(conn net.Conn, wait time.Duration) *HelloConn {
	if wait > 0 {
		conn.SetReadDeadline(time.Now().Add(wait))
	}
	return &HelloConn{Conn: conn}
}

func (c *HelloConn) Read(p []byte) (int, error) {
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

// WrongPeer reports whether the peer is not a kvtool transfer end: it sent
// nothing, or bytes that do not start like the transfer protocol.
func (c *HelloConn) WrongPeer() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !strings.HasPrefix(format.MagicTransfer, string(c.first)) || len(c.first) == 0
}
