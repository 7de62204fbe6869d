package client_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
)

// flaky is a kvtool-looking server that answers the first busy writes 503
// (with Retry-After if retryAfter), then 200, and records each attempt's
// request ID and body.
type flaky struct {
	mu         sync.Mutex
	busy       int
	retryAfter bool
	ids        []string
	bodies     []string
	queries    []string
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(api.ServerHeader, api.ServerID)
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, r.URL.RawQuery)
	if r.Method == http.MethodGet {
		if r.URL.Path == "/v1/cluster" {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error": "this server is not a cluster member"}`))
			return
		}
		w.Write([]byte("v"))
		return
	}
	f.ids = append(f.ids, r.Header.Get(api.RequestIDHeader))
	f.bodies = append(f.bodies, string(b))
	if len(f.ids) <= f.busy {
		if f.retryAfter {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error": "no quorum"}`))
		return
	}
	w.Write([]byte(`{"index": 7}`))
}

// TestClientRetriesWrites: a write answered 503 with Retry-After is sent
// again, with the same request ID and body, up to the client's retries; a
// 503 without Retry-After is not retried; each write has its own ID.
func TestClientRetriesWrites(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name       string
		busy       int
		retryAfter bool
		retries    int
		attempts   int
		ok         bool
	}{
		{"retried until it succeeds", 3, true, 4, 4, true},
		{"retries run out", 3, true, 2, 3, false},
		{"no Retry-After: not retried", 3, false, 4, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &flaky{busy: tc.busy, retryAfter: tc.retryAfter}
			srv := httptest.NewServer(f)
			defer srv.Close()
			c := client.New(srv.Listener.Addr().String())
			defer c.Close()
			c.SetWriteRetries(tc.retries)
			idx, err := c.Put(ctx, "k", []byte("value"))
			var ce *client.Error
			if tc.ok && (err != nil || idx != 7) || !tc.ok && (!errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable) {
				t.Fatalf("put: %d, %v", idx, err)
			}
			if len(f.ids) != tc.attempts {
				t.Fatalf("%d attempts, want %d", len(f.ids), tc.attempts)
			}
			for i := range f.ids {
				if f.ids[i] == "" || f.ids[i] != f.ids[0] || f.bodies[i] != "value" {
					t.Fatalf("attempt %d: request ID %q (first %q), body %q", i, f.ids[i], f.ids[0], f.bodies[i])
				}
			}
			if _, err := c.TxnJSON(ctx, strings.NewReader(`{"ops":[]}`)); tc.ok && err != nil {
				t.Fatal(err)
			}
			if last := f.ids[len(f.ids)-1]; last == f.ids[0] {
				t.Fatalf("a second write reused the first one's request ID %q", last)
			}
		})
	}
}

func TestClientLinearizableGetAndNotCluster(t *testing.T) {
	f := &flaky{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := client.New(srv.Listener.Addr().String())
	defer c.Close()
	if _, _, err := c.GetWith(t.Context(), "k", client.ReadOptions{Linearizable: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if f.queries[0] != "consistency=linearizable" || f.queries[1] != "" {
		t.Fatalf("queries %q", f.queries)
	}
	if _, err := c.ClusterStatus(t.Context()); !errors.Is(err, client.ErrNotCluster) {
		t.Fatalf("cluster status of a single node: %v, want ErrNotCluster", err)
	}
}
