package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/kvtool/kvtool/api"
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
	// DefaultMaxInflight bounds the request body bytes all requests in
	// flight hold at once (four transactions of MaxTxnBody); a request
	// beyond it is answered 503 with Retry-After.
	DefaultMaxInflight = 4 * MaxTxnBody
)

// Options configure a Server. Zero values take the defaults.
type Options struct {
	Logger     *slog.Logger // default: discard
	ScanLimit  int          // default DefaultScanLimit
	MaxScan    int          // default MaxScanLimit
	ScanBytes  int          // default DefaultScanBytes
	MaxPutBody int64        // default MaxPutBody
	MaxTxnBody int64        // default MaxTxnBody
	// MaxInflightBytes bounds the body bytes of all requests in flight;
	// default DefaultMaxInflight.
	MaxInflightBytes int64

	// Cluster, if set, makes the server a cluster member's API (see
	// Cluster): writes go through raft, ?consistency=linearizable reads
	// through ReadIndex, and /v1/cluster, /v1/cluster/transfer-leader and
	// the "cluster" object of /v1/status describe the cluster. Nil: a
	// single node, whose writes commit on the store as always.
	Cluster Cluster
	// WriteTimeout bounds a cluster write's wait for a quorum (then 503
	// with Retry-After); default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// ReadTimeout bounds a linearizable read's wait; default
	// DefaultReadTimeout.
	ReadTimeout time.Duration
	// TransferTimeout bounds a leadership transfer; default
	// DefaultTransferTimeout.
	TransferTimeout time.Duration
	// AskTimeout bounds GET /v1/cluster's question to each other member;
	// default DefaultAskTimeout.
	AskTimeout time.Duration
	// Replica, on a read replica, names its source in GET /v1/status.
	Replica func() *api.ReplicaStatus
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
	setDefault(&o.MaxInflightBytes, DefaultMaxInflight)
	setDefault(&o.WriteTimeout, DefaultWriteTimeout)
	setDefault(&o.ReadTimeout, DefaultReadTimeout)
	setDefault(&o.TransferTimeout, DefaultTransferTimeout)
	setDefault(&o.AskTimeout, DefaultAskTimeout)
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Server is the HTTP API over one store. It does not own the store: closing
// it is the caller's job, after the server has stopped (see Run).
type Server struct {
	st      *store.Store
	cluster Cluster // nil on a single node
	opts    Options
	log     *slog.Logger
	mux     *http.ServeMux
	m       *metrics
	// inflight bounds the request bodies held at once.
	inflight inflight
	// batch merges concurrent single-key writes (single node only).
	batch *writeBatcher
}

// New returns the API handler for st.
func New(st *store.Store, opts Options) *Server {
	opts.fill()
	s := &Server{st: st, cluster: opts.Cluster, opts: opts, log: opts.Logger, mux: http.NewServeMux(), inflight: inflight{max: opts.MaxInflightBytes}}
	s.m = newMetrics(st)
	if s.cluster != nil {
		s.m.reg.MustRegister(newClusterCollector(s.cluster))
	}
	s.m.registerInflight(&s.inflight)
	if s.cluster == nil {
		s.batch = newWriteBatcher(st, func(n int) { s.m.batchWrites.Observe(float64(n)) })
	}
	s.routes()
	return s
}

// route is one endpoint: a method and a ServeMux path pattern.
type route struct {
	method, path string
	h            http.HandlerFunc
}

func (s *Server) routes() {
	// /v1/kv/ is routed before the mux (see route), which would clean
	// the key out of the path.
	rs := []route{
		{http.MethodPost, "/v1/txn", s.txn},
		{http.MethodGet, "/v1/scan", s.scan},
		{http.MethodGet, "/v1/status", s.status},
		{http.MethodGet, "/v1/hash", s.hash},
		{http.MethodPost, "/v1/admin/rotate", s.rotate},
		{http.MethodPost, "/v1/query", s.query},
		{http.MethodGet, "/v1/cluster", s.clusterStatus},
		{http.MethodPost, "/v1/cluster/transfer-leader", s.transferLeader},
		{http.MethodGet, "/metrics", s.m.handler().ServeHTTP},
	}
	rs = append(rs, s.adminRoutes()...)
	rs = append(rs, s.memberRoutes()...)
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
	w.Header()[api.ServerHeader] = serverID
	rec := newRecorder(w)
	s.route(rec, r)
	s.m.observeRequest(r, rec.status, rec.elapsed())
	s.logRequest(r, rec)
}

// serverID is the value of api.ServerHeader (shared, never modified).
var serverID = []string{api.ServerID}

// kvPrefix starts the path of every key.
const kvPrefix = "/v1/kv/"

// kvRoutes name the key endpoints in metrics and logs.
var kvRoutes = map[string]string{
	http.MethodGet: "GET /v1/kv/{key...}", http.MethodHead: "GET /v1/kv/{key...}",
	http.MethodPut: "PUT /v1/kv/{key...}", http.MethodDelete: "DELETE /v1/kv/{key...}",
}

// route sends a request under /v1/kv/ to its key handler with the key
// exactly as sent: everything after the prefix, percent-decoded, with no
// path cleaning (http.ServeMux would answer "a//b", "a/./b" or "x/../b"
// with a redirect to another key). Any other path must be in canonical
// form: the server redirects nowhere.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	if key, ok := strings.CutPrefix(p, kvPrefix); ok {
		s.kv(w, r, key)
		return
	}
	if p != cleanPath(p) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %q (a path with //, /./ or /../ is never redirected; keys go under %s, percent-encoded)", p, kvPrefix))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// kv serves GET, PUT and DELETE of the key whose escaped form is escaped.
func (s *Server) kv(w http.ResponseWriter, r *http.Request, escaped string) {
	pattern, ok := kvRoutes[r.Method]
	if !ok {
		r.Pattern = kvPrefix + "{key...}"
		methodNotAllowed([]string{http.MethodGet, http.MethodPut, http.MethodDelete})(w, r)
		return
	}
	r.Pattern = pattern
	key, err := url.PathUnescape(escaped)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the key in the path is not valid percent-encoding: %v", err))
		return
	}
	switch r.Method {
	case http.MethodPut:
		s.put(w, r, key)
	case http.MethodDelete:
		s.del(w, r, key)
	default:
		s.get(w, r, key)
	}
}

// cleanPath is p as http.ServeMux would clean it: no empty, "." or ".."
// elements, and the trailing slash kept.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
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
