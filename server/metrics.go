package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kvtool/kvtool/cluster"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
)

// Commit results, the values of the "result" label of kvtool_commits_total.
const (
	resultOK       = "ok"        // committed and durable
	resultAborted  = "aborted"   // a check failed; nothing changed
	resultInvalid  = "invalid"   // the transaction can never commit
	resultCanceled = "canceled"  // the client gave up waiting for gates
	resultError    = "error"     // the store failed or is closed
	resultNoQuorum = "no_quorum" // cluster: no quorum answered in time (the write may still apply)
)

// metrics are the server's Prometheus metrics, in a registry of its own (so
// two servers in one process, as in tests, do not collide).
type metrics struct {
	reg           *prometheus.Registry
	commits       *prometheus.CounterVec
	commitSeconds prometheus.Histogram
	requests      *prometheus.CounterVec
	reqSeconds    *prometheus.HistogramVec
	fsyncSeconds  prometheus.Histogram
	batchRecords  prometheus.Histogram
	batchWrites   prometheus.Histogram // requests per merged commit (batch.go)
	walWritten    prometheus.Counter
	maint         *prometheus.CounterVec
	maintSeconds  *prometheus.HistogramVec
	transfers     *transferMetrics
	reqCache      sync.Map           // reqKey -> reqObservers
	commitsOK     prometheus.Counter // commits{result="ok"}, resolved once
}

// maintenanceKinds are the kinds of automatic maintenance steps
// (store.MaintenanceEvent.Kind), exported from the start.
var maintenanceKinds = []string{"delta", "merge", "compact"}

func newMetrics(st *store.Store) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kvtool_commits_total", Help: "Transactions committed through the API, by result.",
		}, []string{"result"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvtool_commit_duration_seconds",
			Help:    "Time from calling Commit to the durable acknowledgement, for successful commits.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16), // 50µs .. 1.6s
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kvtool_http_requests_total", Help: "HTTP requests, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		reqSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kvtool_http_request_duration_seconds",
			Help:    "HTTP request latency, by route pattern.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}, []string{"route"}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvtool_wal_fsync_duration_seconds",
			Help:    "Time in each WAL fsync (one per group commit).",
			Buckets: prometheus.ExponentialBuckets(20e-6, 2, 16), // 20µs .. 0.65s
		}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvtool_wal_group_commit_records",
			Help:    "Records made durable by each group commit (one write and one fsync).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14), // 1 .. 8192
		}),
		batchWrites: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvtool_write_batch_requests",
			Help:    "Single-key write requests merged into each transaction by the write batcher (one WAL record).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 .. 4096
		}),
		walWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kvtool_wal_written_bytes_total", Help: "Bytes written to the WAL.",
		}),
		maint: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kvtool_maintenance_total", Help: "Automatic maintenance steps (delta, merge, compact), by result.",
		}, []string{"kind", "result"}),
		maintSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kvtool_maintenance_duration_seconds",
			Help:    "Duration of maintenance steps (checkpoint writing, deltas, merges, compaction), by kind.",
			Buckets: prometheus.ExponentialBuckets(1e-3, 2, 16), // 1ms .. 33s
		}, []string{"kind"}),
	}
	m.reg.MustRegister(m.commits, m.commitSeconds, m.requests, m.reqSeconds,
		m.fsyncSeconds, m.batchRecords, m.batchWrites, m.walWritten, m.maint, m.maintSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.commitsOK = m.commits.WithLabelValues(resultOK)
	for _, r := range []string{resultOK, resultAborted, resultInvalid, resultCanceled, resultError} {
		m.commits.WithLabelValues(r) // export zeros, so rates work from the start
	}
	for _, k := range maintenanceKinds {
		m.maint.WithLabelValues(k, "ok")
		m.maint.WithLabelValues(k, "error")
		m.maintSeconds.WithLabelValues(k)
	}
	m.transfers = newTransferMetrics(m.reg, st)
	m.registerStoreGauges(st)
	st.ObserveWAL(m.observeSync)
	return m
}

// observeSync records one group commit; it runs on the WAL flusher.
func (m *metrics) observeSync(s segment.SyncStats) {
	m.fsyncSeconds.Observe(s.Sync.Seconds())
	m.batchRecords.Observe(float64(s.Records))
	m.walWritten.Add(float64(s.Bytes))
}

// observeMaintenance records one maintenance step.
func (m *metrics) observeMaintenance(ev store.MaintenanceEvent) {
	result := "ok"
	if ev.Err != nil {
		result = "error"
	}
	m.maint.WithLabelValues(ev.Kind, result).Inc()
	if ev.Err == nil {
		m.maintSeconds.WithLabelValues(ev.Kind).Observe(ev.Duration.Seconds())
	}
}

// registerStoreGauges exports the store's state, read at scrape time.
func (m *metrics) registerStoreGauges(st *store.Store) {
	gauge := func(name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("kvtool_applied_index", "Log index of the published state.", func() float64 { return float64(st.Snapshot().Index()) })
	gauge("kvtool_durable_index", "Highest log index known durable in the WAL.", func() float64 { return float64(st.DurableIndex()) })
	gauge("kvtool_keys", "Keys in the published state.", func() float64 { return float64(st.Snapshot().Len()) })
	gauge("kvtool_wal_segments", "WAL segment files.", func() float64 { return float64(len(st.Log().Segments())) })
	gauge("kvtool_wal_bytes", "Bytes of data (headers and records) in the WAL segments.", func() float64 {
		var n int64
		for _, s := range st.Log().Segments() {
			n += s.Size
		}
		return float64(n)
	})
	gauge("kvtool_failed", "1 once the store has failed after a WAL error and accepts no writes.", func() float64 {
		if st.Err() != nil {
			return 1
		}
		return 0
	})
}

// registerInflight exports the request body bytes in flight.
func (m *metrics) registerInflight(b *inflight) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kvtool_http_inflight_body_bytes",
		Help: "Request body bytes held by requests in flight (bounded by Options.MaxInflightBytes).",
	}, func() float64 { return float64(b.bytes()) }))
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observeCommit counts a commit by result and times the successful ones.
func (m *metrics) observeCommit(err error, d time.Duration) {
	if err == nil {
		m.commitsOK.Inc()
		m.commitSeconds.Observe(d.Seconds())
		return
	}
	m.commits.WithLabelValues(commitResult(err)).Inc()
}

func commitResult(err error) string {
	switch {
	case err == nil:
		return resultOK
	case errors.Is(err, store.ErrCheckFailed):
		return resultAborted
	case errors.Is(err, store.ErrInvalid):
		return resultInvalid
	case errors.Is(err, cluster.ErrNoQuorum):
		return resultNoQuorum
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return resultCanceled
	}
	return resultError
}

func (m *metrics) observeRequest(r *http.Request, status int, d time.Duration) {
	o := m.requestObservers(routeOf(r), methodLabel(r.Method), status)
	o.count.Inc()
	o.seconds.Observe(d.Seconds())
}

// reqKey names one series of kvtool_http_requests_total.
type reqKey struct {
	route, method string
	status        int
}

// reqObservers are the series one kind of request updates.
type reqObservers struct {
	count   prometheus.Counter
	seconds prometheus.Observer
}

// requestObservers returns the series of a request, resolved once per
// route, method and status: WithLabelValues hashes its labels on every call,
// a cost every request paid (issue 16's profile). Routes are patterns and
// methods bounded (methodLabel), so the cache stays small.
func (m *metrics) requestObservers(route, method string, status int) reqObservers {
	k := reqKey{route, method, status}
	if o, ok := m.reqCache.Load(k); ok {
		return o.(reqObservers)
	}
	o := reqObservers{
		count:   m.requests.WithLabelValues(route, method, strconv.Itoa(status)),
		seconds: m.reqSeconds.WithLabelValues(route),
	}
	m.reqCache.Store(k, o)
	return o
}

// methodLabel bounds the method label to the methods HTTP defines.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}
