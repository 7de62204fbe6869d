package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/store"
)

// txn commits a transaction given in the JSON of the CLI contract. The
// body is decoded as it arrives (api.ParseTxnJSON stops at the first
// operation past a limit), within the in-flight budget.
func (s *Server) txn(w http.ResponseWriter, r *http.Request) {
	body, done, ok := s.admitBody(w, r, s.opts.MaxTxnBody, s.opts.MaxTxnBody, "transaction")
	if !ok {
		return
	}
	defer done()
	t, err := parseTxn(r, body)
	if err != nil {
		if !s.bodyError(w, err, "transaction", s.opts.MaxTxnBody) {
			s.m.commits.WithLabelValues(resultInvalid).Inc()
			writeError(w, http.StatusBadRequest, err.Error())
		}
		return
	}
	s.commit(w, r, t)
}

func parseTxn(r *http.Request, body io.Reader) (*store.Txn, error) {
	if r.ContentLength == 0 {
		return nil, errors.New(`empty body: want a transaction, {"ops": [...]}`)
	}
	return ParseTxn(body)
}

// commit runs t with the request's context and answers {"index": N}, or the
// error.
func (s *Server) commit(w http.ResponseWriter, r *http.Request, t *store.Txn) {
	if s.cluster != nil {
		s.propose(w, r, t)
		return
	}
	start := time.Now()
	idx, err := s.st.Commit(r.Context(), t)
	s.m.observeCommit(err, time.Since(start))
	if err != nil {
		s.commitError(w, r, err)
		return
	}
	writeIndex(w, idx)
}

// commitOne commits a single-key write: through the write batcher for a
// connection of the fast path on a single node (merged with the writes of
// other connections), else as commit does.
func (s *Server) commitOne(w http.ResponseWriter, r *http.Request, op store.Op) {
	m := batchMemberOf(r.Context())
	if s.batch == nil || m == nil {
		s.commit(w, r, &store.Txn{Ops: []store.Op{op}})
		return
	}
	if err := (&store.Txn{Ops: []store.Op{op}}).Validate(); err != nil {
		s.m.observeCommit(err, 0)
		s.commitError(w, r, err)
		return
	}
	start := time.Now()
	idx, err := s.batch.submit(m, op)
	s.m.observeCommit(err, time.Since(start))
	if err != nil {
		s.commitError(w, r, err)
		return
	}
	writeIndex(w, idx)
}

// commitError answers a failed commit: 409 for a failed check, 400 for a
// transaction that can never commit, 503 for a closed store or a client
// that gave up, 500 after a WAL failure.
func (s *Server) commitError(w http.ResponseWriter, r *http.Request, err error) {
	var ce *store.CheckError
	switch {
	case errors.As(err, &ce):
		writeErrorBody(w, http.StatusConflict, api.ErrorBody{Error: ce.Error(), Op: &ce.Op, Key: ce.Key, Reason: ce.Reason})
	case errors.Is(err, store.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrNoSpace):
		writeError(w, http.StatusInsufficientStorage, err.Error())
	case errors.Is(err, store.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, "the store is shutting down")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "request cancelled before the transaction was logged; nothing changed")
	default:
		s.log.LogAttrs(r.Context(), slog.LevelError, "commit failed", slog.String("error", err.Error()))
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
