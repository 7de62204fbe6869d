package client_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
)

// TestScanFallsBackToPages checks that the client still scans a whole
// range from a server that does not stream (it rejects ?format=), by pages.
func TestScanFallsBackToPages(t *testing.T) {
	var keys []string
	for i := range 2500 {
		keys = append(keys, fmt.Sprintf("k%04d", i))
	}
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		w.Header().Set(api.ServerHeader, api.ServerID) // an older kvtool server
		q := r.URL.Query()
		if q.Has("format") {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(api.ErrorBody{Error: `unknown scan parameter "format" (want prefix, start, end, limit)`})
			return
		}
		var page []api.Pair
		for _, k := range keys {
			if k >= q.Get("start") && len(page) < client.PageSize {
				page = append(page, api.Pair{Key: k, Value: []byte("v")})
			}
		}
		if len(page) > 0 && page[len(page)-1].Key != keys[len(keys)-1] {
			w.Header().Set(api.MoreHeader, "true")
		}
		json.NewEncoder(w).Encode(page)
	}))
	defer srv.Close()
	c := client.New(srv.Listener.Addr().String())
	defer c.Close()
	n := 0
	if err := c.Scan(t.Context(), client.ScanOptions{}, func(p api.Pair) bool {
		if p.Key != keys[n] {
			t.Fatalf("pair %d: %q, want %q", n, p.Key, keys[n])
		}
		n++
		return true
	}); err != nil || n != len(keys) {
		t.Fatalf("scan: %d pairs, %v; want %d", n, err, len(keys))
	}
	if requests != 4 {
		t.Errorf("%d requests, want 1 refused stream and 3 pages", requests)
	}
}
