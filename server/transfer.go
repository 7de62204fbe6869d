package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
)

// The transfer endpoints sit beside the API of a Server (WithTransfers
// wraps it; server.go is unchanged):
//
//	GET  /v1/transfers        leases of receiving peers, sends started here, and on a
//	                          joined node its join (TransfersStatus)
//	POST /v1/transfer/send    {"to": "HOST:PORT", "max_rate": N, "chunk_size": N}: connect to a
//	                          receiver (kvtool transfer recv) and send; 202 {"id": N}
//	GET  /v1/transfer/stream  the body is a one-way transfer stream of the store
//	                          (kvtool transfer send --addr --to -); ?max_rate=N
//
// A max_rate of 0 (or none) means the server's TransferOptions.MaxRate.
//
// Sending needs the shared secret (TransferOptions.Secret); without it
// those two answer 503. Listing needs nothing.

// TransferOptions configure WithTransfers.
type TransferOptions struct {
	Source transfer.Source // what is sent: a live store (xferstore.NewStoreSource)
	Secret transfer.Secret // zero: sending is not enabled
	// Dial connects to a receiver (TCP, or TLS); default a plain TCP dial.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// MaxRate limits each send and stream (bytes per second) unless the
	// request names a rate; 0: no limit.
	MaxRate int64
	// Context ends the sends started here (the server's lifetime).
	Context context.Context
	Logger  *slog.Logger
	// Join, on a node that joined another, reports the join.
	Join func() *JoinStatus
}

// TransfersStatus is the answer of GET /v1/transfers.
type TransfersStatus struct {
	Leases []store.LeaseInfo `json:"leases"`
	Sends  []*SendJob        `json:"sends"`
	Join   *JoinStatus       `json:"join,omitempty"`
}

// SendJob is a send started by POST /v1/transfer/send.
type SendJob struct {
	ID       int                  `json:"id"`
	To       string               `json:"to"`
	State    string               `json:"state"` // running, done or failed
	Started  time.Time            `json:"started"`
	Progress transfer.Progress    `json:"progress"`
	Result   *transfer.SendResult `json:"result,omitempty"`
	Error    string               `json:"error,omitempty"`
	// Kind classifies a failure for the CLI's exit code: unreachable
	// (nothing answered at To; nothing was sent), peer_gone (the transfer
	// can be resumed), corruption, auth, or error.
	Kind string `json:"kind,omitempty"`
}

// Send job states.
const (
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// JoinStatus describes a node's join of a source (serve --join).
type JoinStatus struct {
	Source string `json:"source"`
	// SourceAPI is the source's HTTP API, where writes go, once its hello
	// said it (or a restarted replica's record did).
	SourceAPI string            `json:"source_api,omitempty"`
	Phase     string            `json:"phase"` // connecting, then transfer.Progress phases
	Connected bool              `json:"connected"`
	CutOver   bool              `json:"cut_over"`
	Progress  transfer.Progress `json:"progress"`
	Error     string            `json:"error,omitempty"` // the last failure, if the node is reconnecting
	// Attempts counts the sessions tried so far (the first, then one per
	// reconnection after a failure that may pass).
	Attempts int `json:"attempts"`
}

// maxJobs bounds the finished sends GET /v1/transfers remembers.
const maxJobs = 32

type transfers struct {
	next    http.Handler
	st      *store.Store
	o       TransferOptions
	metrics *Server // whose /metrics count the sends; nil: none

	mu   sync.Mutex
	jobs []*SendJob
	seq  int
}

// WithTransfers returns next with the transfer endpoints in front of it.
func WithTransfers(next http.Handler, st *store.Store, o TransferOptions) http.Handler {
	if o.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second}
		o.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if o.Context == nil {
		o.Context = context.Background()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	t := &transfers{next: next, st: st, o: o}
	if s, ok := next.(*Server); ok {
		t.metrics = s // the API's own /metrics count its sends
	}
	return t
}

// observeProgress records a send's progress in the server's metrics.
func (t *transfers) observeProgress(p transfer.Progress) {
	if t.metrics != nil {
		t.metrics.ObserveSendProgress(p)
	}
}

// observeSend counts a send that ended in the server's metrics.
func (t *transfers) observeSend(peer string, res transfer.SendResult, err error) {
	if t.metrics != nil {
		t.metrics.ObserveSend(peer, res, err)
	}
}

func (t *transfers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/transfers" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, t.status())
	case r.URL.Path == "/v1/transfer/send" && r.Method == http.MethodPost:
		t.send(w, r)
	case r.URL.Path == "/v1/transfer/stream" && r.Method == http.MethodGet:
		t.stream(w, r)
	case r.URL.Path == "/v1/transfers" || strings.HasPrefix(r.URL.Path, "/v1/transfer/"):
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
	default:
		t.next.ServeHTTP(w, r)
	}
}

func (t *transfers) status() *TransfersStatus {
	out := &TransfersStatus{Leases: t.st.Leases(), Sends: []*SendJob{}}
	if out.Leases == nil {
		out.Leases = []store.LeaseInfo{}
	}
	t.mu.Lock()
	for _, j := range t.jobs {
		c := *j
		out.Sends = append(out.Sends, &c)
	}
	t.mu.Unlock()
	if t.o.Join != nil {
		out.Join = t.o.Join()
	}
	return out
}

// sendRequest is the body of POST /v1/transfer/send.
type sendRequest struct {
	To        string `json:"to"`
	MaxRate   int64  `json:"max_rate"`
	ChunkSize int    `json:"chunk_size"`
}

func (t *transfers) send(w http.ResponseWriter, r *http.Request) {
	if t.o.Secret.IsZero() {
		writeError(w, http.StatusServiceUnavailable, errNoSecret)
		return
	}
	var req sendRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.To == "" || req.MaxRate < 0 || req.ChunkSize < 0 {
		writeError(w, http.StatusBadRequest, `want {"to": "HOST:PORT", "max_rate": BYTES_PER_SECOND, "chunk_size": BYTES}`)
		return
	}
	job := t.startJob(req)
	writeJSON(w, http.StatusAccepted, map[string]int{"id": job.ID})
}

const errNoSecret = "transfers are not enabled on this server: start it with --secret-file FILE or KVTOOL_SECRET"

// startJob runs a send in the background and lists it.
func (t *transfers) startJob(req sendRequest) *SendJob {
	t.mu.Lock()
	t.seq++
	job := &SendJob{ID: t.seq, To: req.To, State: JobRunning, Started: time.Now().UTC()}
	t.jobs = append(t.jobs, job)
	if len(t.jobs) > maxJobs {
		t.jobs = t.jobs[len(t.jobs)-maxJobs:]
	}
	t.mu.Unlock()
	go t.runJob(job, req)
	return job
}

func (t *transfers) runJob(job *SendJob, req sendRequest) {
	ctx := t.o.Context
	opts := transfer.SendOptions{Secret: t.o.Secret, Peer: req.To, MaxRate: t.rate(req.MaxRate), ChunkSize: req.ChunkSize,
		Progress: func(p transfer.Progress) { t.update(job, func() { job.Progress = p }); t.observeProgress(p) }}
	conn, err := t.o.Dial(ctx, req.To)
	var res transfer.SendResult
	if err == nil {
		res, err = transfer.Send(ctx, conn, t.o.Source, opts)
		conn.Close()
	} else {
		err = fmt.Errorf("%w: connect to %s: %v", errUnreachable, req.To, err)
	}
	t.observeSend(req.To, res, err)
	t.update(job, func() {
		job.Result, job.State = &res, JobDone
		if err != nil {
			job.State, job.Error, job.Kind = JobFailed, err.Error(), ErrorKind(err)
		}
	})
	t.o.Logger.Info("transfer send finished", "id", job.ID, "to", req.To, "state", job.State, "error", job.Error)
}

// rate is the rate a request asked for, never above the server's limit
// (a request may slow a transfer down, not lift the operator's cap).
func (t *transfers) rate(asked int64) int64 {
	if limit := t.o.MaxRate; limit > 0 && (asked <= 0 || asked > limit) {
		return limit
	}
	return asked
}

// errUnreachable is a send whose receiver could not be connected to.
var errUnreachable = errors.New("cannot reach the receiver")

// ErrorKind classifies a transfer error: unreachable, peer_gone
// (resumable), corruption, auth, or error.
func ErrorKind(err error) string {
	switch {
	case errors.Is(err, errUnreachable):
		return "unreachable"
	case errors.Is(err, transfer.ErrPeerGone):
		return "peer_gone"
	case errors.Is(err, format.ErrCorruption):
		return "corruption"
	case errors.Is(err, transfer.ErrAuth):
		return "auth"
	}
	return "error"
}

func (t *transfers) update(job *SendJob, f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f()
}

// stream answers a one-way transfer stream of the store. A failure after
// the first byte can only cut the body short; the receiver then reports
// the stream incomplete.
func (t *transfers) stream(w http.ResponseWriter, r *http.Request) {
	if t.o.Secret.IsZero() {
		writeError(w, http.StatusServiceUnavailable, errNoSecret)
		return
	}
	var rate int64
	if v := r.URL.Query().Get("max_rate"); v != "" {
		if _, err := fmt.Sscan(v, &rate); err != nil || rate < 0 {
			writeError(w, http.StatusBadRequest, "max_rate must be a number of bytes per second")
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	res, err := transfer.WriteStream(r.Context(), flushWriter{w}, t.o.Source,
		transfer.SendOptions{Secret: t.o.Secret, Peer: r.RemoteAddr, MaxRate: t.rate(rate)})
	t.observeSend(r.RemoteAddr, res, err)
	if err != nil {
		t.o.Logger.Warn("transfer stream cut short", "remote", r.RemoteAddr, "error", err)
	}
}

// flushWriter sends every write to the client at once.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	http.NewResponseController(f.w).Flush()
	return n, err
}

// Syncing is the API of a node still receiving its snapshot (serve --join):
// GET /v1/status and GET /v1/transfers report the join's progress; every
// other request is refused with 503 and a "syncing" error.
func Syncing(join func() *JoinStatus) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js := join()
		switch r.URL.Path {
		case "/v1/status":
			writeJSON(w, http.StatusOK, map[string]any{"syncing": true, "join": js})
		case "/v1/transfers":
			writeJSON(w, http.StatusOK, &TransfersStatus{Leases: []store.LeaseInfo{}, Sends: []*SendJob{}, Join: js})
		default:
			msg := fmt.Sprintf("syncing: this node is still receiving its snapshot from %s (%d of %d chunks); it serves once it has cut over",
				js.Source, js.Progress.ChunksDone, js.Progress.Chunks)
			if js.SourceAPI != "" {
				msg += "; send writes to the source's API at " + js.SourceAPI
			}
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, msg)
		}
	})
}

// ReadReplica refuses writes (PUT and DELETE of /v1/kv, POST /v1/txn) on
// a read replica with 403, naming its source; everything else goes to
// next.
func ReadReplica(next http.Handler, source string) http.Handler {
	return Replica(next, func() *api.ReplicaStatus { return &api.ReplicaStatus{Source: source} })
}

// Replica is ReadReplica whose source is asked for at each refusal: the
// message names the source's API, where writes go, once it is known.
func Replica(next http.Handler, source func() *api.ReplicaStatus) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		write := r.URL.Path == "/v1/txn" && r.Method == http.MethodPost ||
			strings.HasPrefix(r.URL.Path, "/v1/kv/") && (r.Method == http.MethodPut || r.Method == http.MethodDelete)
		if write {
			writeError(w, http.StatusForbidden, replicaRefusal(source()))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func replicaRefusal(s *api.ReplicaStatus) string {
	if s.SourceAPI == "" {
		return "this node is a read replica of " + s.Source + "; send writes there"
	}
	return "this node is a read replica of " + s.Source + " (its transfer port); send writes to the source's API at " + s.SourceAPI
}
