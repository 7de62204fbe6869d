package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/client"
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

// helloTimeout bounds how long the end that dials a transfer peer waits
// for its first bytes: a kvtool peer sends them at once, something else
// (an HTTP server waits for a request) may never.
var helloTimeout = 5 * time.Second

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
