package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// debugHandler serves Go's profiles (net/http/pprof) under /debug/pprof/:
// the index, cmdline, profile (CPU), symbol, trace, and every named
// profile (heap, goroutine, allocs, block, mutex, threadcreate).
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveDebug serves debugHandler on ln until ctx ends, then closes it
// (a profile being taken is cut off).
func serveDebug(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return partError(PartDebug, OpServe, ln.Addr().String(), err)
	case <-ctx.Done():
	}
	srv.Close()
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return partError(PartDebug, OpServe, ln.Addr().String(), err)
	}
	return nil
}
