package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
)

// inflight bounds the request body bytes that all requests in flight hold
// at once: a body is charged before it is read (its declared length) or as
// it is read (a chunked one), and given back when its request is answered.
// The transaction decoder keeps what a request holds within a small
// multiple of its body (api.ParseTxnJSON), so this bounds the memory of
// requests in flight.
//
// It is lock-free: every request takes and gives once, and a mutex here was
// the most contended lock of the server under 128 writers (profile of
// issue 16).
type inflight struct {
	used atomic.Int64
	max  int64
}

// take charges n bytes if they fit.
func (b *inflight) take(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *inflight) give(n int64) { b.used.Add(-n) }

func (b *inflight) bytes() int64 { return b.used.Load() }

// errBusy is returned by a charged body's Read when the in-flight budget
// cannot hold its next bytes.
var errBusy = errors.New("kvtool/server: the request bodies in flight are at their limit")

// chargedBody charges the in-flight budget for each byte read.
type chargedBody struct {
	r       io.Reader
	b       *inflight
	charged int64
}

func (c *chargedBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		if !c.b.take(int64(n)) {
			return 0, errBusy
		}
		c.charged += int64(n)
	}
	return n, err
}

// admitBody admits the body of r, at most limit bytes, to the in-flight
// budget. A declared length over limit is answered 413, one the budget
// cannot hold now 503 with Retry-After, without reading the body; then ok
// is false. Otherwise it returns the body to read (bounded by limit, and
// charging a body of undeclared length as it is read: errBusy) and done,
// which gives the bytes back once the request is answered.
func (s *Server) admitBody(w http.ResponseWriter, r *http.Request, limit, shown int64, what string) (body io.Reader, done func(), ok bool) {
	if r.ContentLength > limit {
		tooLarge(w, what, shown)
		return nil, nil, false
	}
	limited := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength >= 0 {
		n := r.ContentLength
		if !s.inflight.take(n) {
			s.busy(w, what)
			return nil, nil, false
		}
		return limited, func() { s.inflight.give(n) }, true
	}
	cb := &chargedBody{r: limited, b: &s.inflight}
	return cb, func() { s.inflight.give(cb.charged) }, true
}

// readBody reads the whole request body, at most limit bytes, within the
// in-flight budget. A failure is answered (413 over the limit, 503 over
// the budget, 400 otherwise) and readBody returns false; call done once
// the request is answered either way. what names the body in messages, and
// shown is the limit a 413 names: the one the user knows (a value's, not the
// body's slack above it).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit, shown int64, what string) (b []byte, done func(), ok bool) {
	body, done, ok := s.admitBody(w, r, limit, shown, what)
	if !ok {
		return nil, func() {}, false
	}
	b, err := readAll(body, r.ContentLength)
	if err != nil {
		if !s.bodyError(w, err, what, shown) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("read %s: %v", what, err))
		}
		return nil, done, false
	}
	return b, done, true
}

// bodyError answers a failure to read a request body, if err is one, and
// reports whether it did.
func (s *Server) bodyError(w http.ResponseWriter, err error, what string, shown int64) bool {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		tooLarge(w, what, shown)
	case errors.Is(err, errBusy):
		s.busy(w, what)
	default:
		return false
	}
	return true
}

func tooLarge(w http.ResponseWriter, what string, limit int64) {
	// The rest of the body is not read; the connection is closed after
	// the answer.
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s is over the limit of %d bytes", what, limit))
}

// busy answers 503 for a body the in-flight budget cannot hold now.
func (s *Server) busy(w http.ResponseWriter, what string) {
	w.Header().Set("Connection", "close")
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, fmt.Sprintf(
		"server busy: the request bodies in flight hold %d of the %d bytes allowed (Options.MaxInflightBytes), no room for this %s; retry later",
		s.inflight.bytes(), s.inflight.max, what))
}

// readAll reads r to EOF into one buffer of the declared length n (if
// known), so a value is read without the regrowth of io.ReadAll. A body
// shorter than declared is an error, as with io.ReadAll over net/http's
// body (io.ErrUnexpectedEOF).
func readAll(r io.Reader, n int64) ([]byte, error) {
	if n < 0 || n > 1<<20 {
		return io.ReadAll(r)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	var one [1]byte
	m, err := r.Read(one[:])
	if m == 0 && err == io.EOF {
		return b, nil
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	rest, err := io.ReadAll(io.MultiReader(bytes.NewReader(one[:m]), r))
	return append(b, rest...), err
}
