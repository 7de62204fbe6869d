package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/store"
)

// scan answers the pairs of a range from one snapshot, in key order.
//
// By default the answer is one page, a JSON array: it stops at the limit
// or once it holds ScanBytes of keys and values, and the X-Kvtool-More
// header says whether the range goes on. With ?format=jsonl the whole range
// (up to ?limit=, if given) streams from one snapshot as JSON lines, written
// as it is read, so neither side holds more than a buffer of it.
func (s *Server) scan(w http.ResponseWriter, r *http.Request) {
	o, lines, err := s.scanOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	snap, ok := s.readSnapshot(w, r)
	if !ok {
		return
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(snap.Index(), 10))
	if lines {
		s.scanLines(w, r, snap, o)
		return
	}
	pairs, more := s.scanPage(snap, o)
	if more {
		w.Header().Set(api.MoreHeader, "true")
	}
	writeJSON(w, http.StatusOK, pairs)
}

// scanPage collects at most o.Limit pairs; it asks the snapshot for one
// more to learn whether the range goes on.
func (s *Server) scanPage(snap *store.Snapshot, o store.ScanOptions) ([]api.Pair, bool) {
	pairs := make([]api.Pair, 0, min(o.Limit, 64))
	size, more := 0, false
	limit := o.Limit
	o.Limit++
	s.scanSnapshot(snap, o, func(k string, v []byte) bool {
		if len(pairs) == limit || size >= s.opts.ScanBytes {
			more = true
			return false
		}
		pairs = append(pairs, api.Pair{Key: k, Value: v})
		size += len(k) + len(v)
		return true
	})
	return pairs, more
}

// scanStreamBuffer is how much of a streamed scan is buffered before it is
// sent (and flushed to the client).
const scanStreamBuffer = 32 << 10

// scanLines streams the range as JSON lines. A client that goes away stops
// it; the end of the chunked body is the end of the range.
func (s *Server) scanLines(w http.ResponseWriter, r *http.Request, snap *store.Snapshot, o store.ScanOptions) {
	w.Header().Set("Content-Type", api.JSONLinesType)
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(flushWriter{w}, scanStreamBuffer)
	enc := json.NewEncoder(bw)
	s.scanSnapshot(snap, o, func(k string, v []byte) bool {
		return enc.Encode(api.Pair{Key: k, Value: v}) == nil && r.Context().Err() == nil
	})
	bw.Flush()
}

// scanOptions reads ?prefix=&start=&end=&limit=&format=. A page's limit is
// 1..MaxScan (default ScanLimit); a stream (format=jsonl) has no limit
// unless one is given.
func (s *Server) scanOptions(r *http.Request) (o store.ScanOptions, lines bool, err error) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "prefix", "start", "end", "limit", "format", "consistency":
		default:
			return o, false, fmt.Errorf("unknown scan parameter %q (want prefix, start, end, limit, format, consistency)", k)
		}
	}
	switch f := q.Get("format"); f {
	case "", "json":
	case "jsonl":
		lines = true
	default:
		return o, false, fmt.Errorf("format %q: want json (one page, an array) or jsonl (the whole range, JSON lines)", f)
	}
	o = store.ScanOptions{Prefix: q.Get("prefix"), Start: q.Get("start"), End: q.Get("end"), Limit: s.opts.ScanLimit}
	if lines {
		o.Limit = 0
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return o, lines, fmt.Errorf("limit %q is not a positive integer", l)
		}
		if n > s.opts.MaxScan && !lines {
			return o, lines, fmt.Errorf("limit %d is over the maximum of %d; page with start= after the last key, or stream with format=jsonl", n, s.opts.MaxScan)
		}
		o.Limit = n
	}
	return o, lines, nil
}
