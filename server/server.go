package server

import (
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/store"
)

// Default bounds; Options may override them.
const (
	// DefaultScanLimit is the number of pairs a scan returns without ?limit=.
	DefaultScanLimit = 1000
	// MaxScanLimit is the largest ?limit= a scan accepts.
	MaxScanLimit = 10000
	// DefaultScanBytes is the key and value bytes after which a scan page
	// stops early (with the X-Kvtool-More header), so one page stays small
	// even when every value is large.
	DefaultScanBytes = 8 << 20
	// MaxPutBody bounds the body of PUT /v1/kv: the value limit plus slack,
	// so that a value just over format.MaxValueSize gets a 400 naming the
	// limit rather than a 413.
	MaxPutBody = format.MaxValueSize + 64<<10
	// MaxTxnBody bounds the body of POST /v1/txn: store.MaxTxnBytes of keys
	// and values, with room for base64 (4/3) and per-op JSON overhead.
	MaxTxnBody = store.MaxTxnBytes*3/2 + format.MaxTxnOps*128
)

// Options configure a Server. Zero values take the defaults.
type Options struct {
	Logger     *slog.Logger // default: discard
	ScanLimit  int          // default DefaultScanLimit
	MaxScan    int          // default MaxScanLimit
	ScanBytes  int          // default DefaultScanBytes
	MaxPutBody int64        // default MaxPutBody
	MaxTxnBody int64        // default MaxTxnBody
}

func (o *Options) fill() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	setDefault(&o.ScanLimit, DefaultScanLimit)
	setDefault(&o.MaxScan, MaxScanLimit)
	setDefault(&o.ScanBytes, DefaultScanBytes)
	setDefault(&o.MaxPutBody, MaxPutBody)
	setDefault(&o.MaxTxnBody, MaxTxnBody)
}

func setDefault[T int | int64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Server is the HTTP API over one store. It does not own the store: closing
// it is the caller's job, after the server has stopped (see Run).
type Server struct {
	st   *store.Store
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
	m    *metrics
}

// New returns the API handler for st.
func New(st *store.Store, opts Options) *Server {
	opts.fill()
	s := &Server{st: st, opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	s.m = newMetrics(st)
	s.routes()
	return s
}

// route is one endpoint: a method and a ServeMux path pattern.
type route struct {
	method, path string
	h            http.HandlerFunc
}

func (s *Server) routes() {
	rs := []route{
		{http.MethodGet, "/v1/kv/{key...}", s.get},
		{http.MethodPut, "/v1/kv/{key...}", s.put},
		{http.MethodDelete, "/v1/kv/{key...}", s.del},
		{http.MethodPost, "/v1/txn", s.txn},
		{http.MethodGet, "/v1/scan", s.scan},
		{http.MethodGet, "/v1/status", s.status},
		{http.MethodGet, "/v1/hash", s.hash},
		{http.MethodPost, "/v1/admin/rotate", s.rotate},
		{http.MethodPost, "/v1/query", s.query},
		{http.MethodGet, "/metrics", s.m.handler().ServeHTTP},
	}
	rs = append(rs, s.adminRoutes()...)
	allowed := map[string][]string{}
	var paths []string
	for _, r := range rs {
		s.mux.HandleFunc(r.method+" "+r.path, r.h)
		if allowed[r.path] == nil {
			paths = append(paths, r.path)
		}
		allowed[r.path] = append(allowed[r.path], r.method)
	}
	// A method-less pattern is less specific than the ones above, so it
	// only catches the other methods: answer them in JSON, not plain text.
	for _, p := range paths {
		s.mux.HandleFunc(p, methodNotAllowed(allowed[p]))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
}

func methodNotAllowed(methods []string) http.HandlerFunc {
	allow := strings.Join(methods, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+allow)
	}
}

// ServeHTTP routes the request, counting it and logging it at debug level
// (5xx answers at error level).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := newRecorder(w)
	s.mux.ServeHTTP(rec, r)
	s.m.observeRequest(r, rec.status, rec.elapsed())
	s.logRequest(r, rec)
}

func (s *Server) logRequest(r *http.Request, rec *recorder) {
	level := slog.LevelDebug
	if rec.status >= 500 {
		level = slog.LevelError
	}
	if !s.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method), slog.String("route", routeOf(r)),
		slog.Int("status", rec.status), slog.Duration("duration", rec.elapsed()),
		slog.String("remote", r.RemoteAddr),
	}
	if rec.errMsg != "" {
		attrs = append(attrs, slog.String("error", rec.errMsg))
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}

// routeOf is the pattern that served r (set by the mux), never the raw path,
// which holds a key.
func routeOf(r *http.Request) string {
	if r.Pattern == "" {
		return "unmatched"
	}
	return r.Pattern
}

// ReportMaintenance logs and counts one automatic maintenance step; pass it
// to store.RunMaintenance.
func (s *Server) ReportMaintenance(ev store.MaintenanceEvent) {
	s.m.observeMaintenance(ev)
	if ev.Err != nil {
		s.log.Error("maintenance failed", "kind", ev.Kind, "err", ev.Err)
		return
	}
	s.log.Info("maintenance", "kind", ev.Kind, "index", ev.Index, "duration", ev.Duration)
}
