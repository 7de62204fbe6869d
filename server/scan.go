package server

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/store"
)

// scan answers the pairs of a range from one snapshot, in key order. The
// page stops at the limit or once it holds ScanBytes of keys and values;
// either way the X-Kvtool-More header says whether the range goes on.
func (s *Server) scan(w http.ResponseWriter, r *http.Request) {
	o, err := s.scanOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	snap := s.st.Snapshot()
	pairs, more := s.scanPage(snap, o)
	w.Header().Set(client.IndexHeader, strconv.FormatUint(snap.Index(), 10))
	if more {
		w.Header().Set(client.MoreHeader, "true")
	}
	writeJSON(w, http.StatusOK, pairs)
}

// scanPage collects at most o.Limit pairs; it asks the snapshot for one
// more to learn whether the range goes on.
func (s *Server) scanPage(snap *store.Snapshot, o store.ScanOptions) ([]client.Pair, bool) {
	pairs := make([]client.Pair, 0, min(o.Limit, 64))
	size, more := 0, false
	limit := o.Limit
	o.Limit++
	snap.Scan(o, func(k string, v []byte) bool {
		if len(pairs) == limit || size >= s.opts.ScanBytes {
			more = true
			return false
		}
		pairs = append(pairs, client.Pair{Key: k, Value: v})
		size += len(k) + len(v)
		return true
	})
	return pairs, more
}

// scanOptions reads ?prefix=&start=&end=&limit= (limit 1..MaxScan, default
// ScanLimit).
func (s *Server) scanOptions(r *http.Request) (store.ScanOptions, error) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "prefix", "start", "end", "limit":
		default:
			return store.ScanOptions{}, fmt.Errorf("unknown scan parameter %q (want prefix, start, end, limit)", k)
		}
	}
	o := store.ScanOptions{Prefix: q.Get("prefix"), Start: q.Get("start"), End: q.Get("end"), Limit: s.opts.ScanLimit}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return o, fmt.Errorf("limit %q is not a positive integer", l)
		}
		if n > s.opts.MaxScan {
			return o, fmt.Errorf("limit %d is over the maximum of %d; page with start= after the last key", n, s.opts.MaxScan)
		}
		o.Limit = n
	}
	return o, nil
}
