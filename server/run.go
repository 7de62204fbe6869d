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
func Run(ctx context.Context, ln net.Listener, h http.Handler, opts RunOptions) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	srv := newHTTPServer(identify(h), opts.Logger)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	opts.Logger.Info("shutting down", "timeout", opts.ShutdownTimeout)
	err := shutdown(srv, opts.ShutdownTimeout)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// identify marks every answer as a kvtool server's (api.ServerID), so
// that a client can tell it from another program at the address.
func identify(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.ServerHeader, api.ServerID)
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

func shutdown(srv *http.Server, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: requests still running after %v were cut off: %w", timeout, err)
	}
	return nil
}
