package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/query"
	"github.com/kvtool/kvtool/replay"
	"github.com/kvtool/kvtool/store"
)

// Bounds of POST /v1/query; a request may ask for less.
const (
	// QueryTimeout is the longest a query may run.
	QueryTimeout = 60 * time.Second
	// QueryMaxRows is the most rows a query may return; past it the
	// answer ends with "truncated".
	QueryMaxRows = 1_000_000
	// maxQueryBody bounds the request body (the SQL text).
	maxQueryBody = 1 << 20
	// queryFlushRows is how many rows are sent per flush, so that rows
	// reach the client as they are produced without a flush per row.
	queryFlushRows = 256
)

// querySlots bounds the queries running at once in the process to the
// cores (at least two, so one client reading slowly cannot hold up every
// other query): queries are CPU-bound, and more at once would only take
// the cores from writers. A query waits for a slot within its time limit.
var querySlots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

// querySessions keeps a session per slot between queries: opening one
// (creating its tables) costs about a millisecond, a hundred point
// lookups; a kept one is reset to the next query's snapshot.
var querySessions = query.NewPool(cap(querySlots), query.Options{})

// queryTestHook, if set (by tests), is called with how each query ended.
var queryTestHook atomic.Pointer[func(err error)]

// query runs one read-only SQL statement on one snapshot (POST /v1/query,
// see package client for the stream). The snapshot is taken before the
// statement starts and every table of the statement reads it; the
// statement stops at the time limit, at the row limit, or when the client
// goes away (the request's context).
func (s *Server) query(w http.ResponseWriter, r *http.Request) {
	var req client.QueryRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxQueryBody)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "the body is not a query request ({\"sql\": \"...\"}): "+err.Error())
		return
	}
	timeout, maxRows := QueryTimeout, int64(QueryMaxRows)
	if req.TimeoutMS > 0 {
		timeout = min(timeout, time.Duration(req.TimeoutMS)*time.Millisecond)
	}
	if req.MaxRows > 0 {
		maxRows = min(maxRows, req.MaxRows)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	var err error
	select {
	case querySlots <- struct{}{}:
		err = s.runQuery(ctx, w, req.SQL, maxRows)
		<-querySlots
	case <-ctx.Done():
		err = fmt.Errorf("kvtool/server: waiting for other queries to finish: %w", ctx.Err())
		writeQueryError(w, ctx, err)
	}
	if h := queryTestHook.Load(); h != nil {
		(*h)(err)
	}
}

func (s *Server) runQuery(ctx context.Context, w http.ResponseWriter, sql string, maxRows int64) error {
	snap := s.st.Snapshot()
	sess, err := querySessions.Get(ctx, query.Source{FS: s.st.FS(), Dir: s.st.Dir(), Snapshot: snap, Leases: s.leases, Cluster: s.queryCluster(),
		Yield: newQueryPacer(func() uint64 { return s.st.Snapshot().Index() }).yield})
	if err != nil {
		writeQueryError(w, ctx, err)
		return err
	}
	defer querySessions.Put(sess)
	rows, err := sess.Query(ctx, sql)
	if err != nil {
		writeQueryError(w, ctx, err)
		return err
	}
	defer rows.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set(client.IndexHeader, strconv.FormatUint(snap.Index(), 10))
	w.WriteHeader(http.StatusOK)
	return streamRows(ctx, w, rows, snap.Index(), maxRows)
}

// streamRows writes the header line, the rows and the end line.
func streamRows(ctx context.Context, w http.ResponseWriter, rows *query.Rows, index uint64, maxRows int64) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	rc := http.NewResponseController(w)
	line, _ := json.Marshal(client.QueryHeader{Columns: rows.Columns(), AppliedIndex: index})
	bw.Write(append(line, '\n'))
	end := client.QueryEnd{End: true}
	var buf []byte
	for rows.Next() {
		if end.Rows == maxRows {
			end.Truncated = true
			break
		}
		buf = append(client.AppendRow(buf[:0], rows.Values()), '\n')
		if _, err := bw.Write(buf); err != nil {
			return err // the client went away
		}
		if end.Rows++; end.Rows%queryFlushRows == 0 {
			if err := flush(bw, rc); err != nil {
				return err
			}
		}
	}
	err := rows.Err()
	if err != nil {
		end.Error, end.Kind = queryErrorText(ctx, err), queryKind(ctx, err)
	}
	line, _ = json.Marshal(end)
	bw.Write(append(line, '\n'))
	if ferr := flush(bw, rc); err == nil {
		err = ferr
	}
	return err
}

func flush(bw *bufio.Writer, rc *http.ResponseController) error {
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// writeQueryError answers a statement that failed before its first row.
func writeQueryError(w http.ResponseWriter, ctx context.Context, err error) {
	kind := queryKind(ctx, err)
	status := http.StatusInternalServerError
	switch kind {
	case client.QueryKindSQL, client.QueryKindReadOnly:
		status = http.StatusBadRequest
	case client.QueryKindNotCovered:
		status = http.StatusUnprocessableEntity
	case client.QueryKindTimeout:
		status = http.StatusServiceUnavailable
	case client.QueryKindCanceled:
		status = 499 // the client went away; nobody reads this
	}
	if rec, ok := w.(*recorder); ok && status >= 500 {
		rec.errMsg = err.Error()
	}
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
		Kind  string `json:"kind,omitempty"`
	}{queryErrorText(ctx, err), kind})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// queryKind classifies a query's error for the client.
func queryKind(ctx context.Context, err error) string {
	var se *query.SQLError
	switch {
	case errors.As(err, &se), errors.Is(err, query.ErrNoIndex):
		return client.QueryKindSQL
	case errors.Is(err, query.ErrReadOnly):
		return client.QueryKindReadOnly
	case errors.Is(err, replay.ErrNotCovered):
		return client.QueryKindNotCovered
	case errors.Is(err, format.ErrCorruption):
		return client.QueryKindCorruption
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return client.QueryKindTimeout
	case errors.Is(err, context.Canceled):
		return client.QueryKindCanceled
	}
	return ""
}

func queryErrorText(ctx context.Context, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("the query ran past the server's time limit and was stopped (%v)", err)
	}
	return err.Error()
}

// leases are the store's retention leases and, on a cluster member that
// leads, each peer's lease on the raft log (peer "raft:NAME", file "raft"),
// for the query's leases table.
func (s *Server) leases() []store.LeaseInfo {
	out := s.st.Leases()
	if s.cluster == nil {
		return out
	}
	st := s.cluster.Status()
	names := map[uint64]string{}
	for _, m := range st.Members {
		names[m.ID] = m.Name
	}
	for _, l := range st.Leases {
		peer := names[l.Peer]
		if peer == "" {
			peer = hexID(l.Peer)
		}
		if l.Transfer {
			peer += " (snapshot)"
		}
		out = append(out, store.LeaseInfo{Peer: "raft:" + peer, Index: l.Index, Files: []string{format.RaftDir},
			RetainedBytes: l.Bytes, State: l.State, Expires: l.Expires})
	}
	return out
}
