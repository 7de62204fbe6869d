package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/kvtool/kvtool/api"
)

// DefaultShutdownTimeout is how long Run lets requests in flight finish.
const DefaultShutdownTimeout = 10 * time.Second

// RunOptions configure Run.
type RunOptions struct {
	Logger          *slog.Logger  // default: discard
	ShutdownTimeout time.Duration // default DefaultShutdownTimeout
}

// Run serves h on ln until ctx is done, then shuts down: it stops accepting
// connections, closes idle ones, and waits up to the shutdown timeout for
// requests in flight to finish before closing their connections. It
// returns nil after a clean shutdown. It closes ln but not the store behind
// h: close that after Run returns (store.Close also waits for commits a
// cut-off request may have left running).
//
// The simple key requests of a keep-alive connection are served by a
// lean HTTP/1.1 loop of this package, every other request by net/http
// (see connServer); both call h.
func Run(ctx context.Context, ln net.Listener, h http.Handler, opts RunOptions) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	h = identify(h)
	srv := newHTTPServer(h, opts.Logger)
	cs := newConnServer(h, srv, ln, opts.Logger)
	errc := make(chan error, 2)
	go func() { errc <- cs.serve() }()
	go func() { errc <- srv.Serve(cs.handoff) }()
	select {
	case err := <-errc:
		shutdown(srv, cs, opts.ShutdownTimeout)
		<-errc
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	opts.Logger.Info("shutting down", "timeout", opts.ShutdownTimeout)
	err := shutdown(srv, cs, opts.ShutdownTimeout)
	for range 2 {
		if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	return err
}

// identify marks every answer as a kvtool server's (api.ServerID), so
// that a client can tell it from another program at the address.
func identify(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()[api.ServerHeader] = serverID
		h.ServeHTTP(w, r)
	})
}

// newHTTPServer bounds what a slow or idle client can hold. There is no
// write timeout: a commit's answer waits for an fsync, and a scan page is
// bounded in size.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// shutdown shuts both servers down at once: the connections the fast
// path serves and those handed to net/http.
func shutdown(srv *http.Server, cs *connServer, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	fastErr := make(chan error, 1)
	go func() { fastErr <- cs.shutdown(ctx) }()
	err := srv.Shutdown(ctx)
	if ferr := <-fastErr; err == nil {
		err = ferr
	}
	if err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: requests still running after %v were cut off: %w", timeout, err)
	}
	return nil
}
