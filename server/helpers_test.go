package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

// testServer is a server over a fresh store on disk, reached over loopback.
type testServer struct {
	t   testing.TB
	st  *store.Store
	srv endpoint
	c   *client.Client
}

// endpoint is where a test server listens, and an HTTP client for it.
type endpoint struct {
	URL string
	hc  *http.Client
}

func (e endpoint) Client() *http.Client { return e.hc }

func endpointOf(srv *httptest.Server) endpoint { return endpoint{URL: srv.URL, hc: srv.Client()} }

// serveRun serves h with server.Run (the path of kvtool serve: the fast
// key path and net/http behind it) on a loopback port until the test ends.
func serveRun(t testing.TB, h http.Handler) endpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, ln, h, server.RunOptions{ShutdownTimeout: 10 * time.Second}) }()
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	return endpoint{URL: "http://" + ln.Addr().String(), hc: &http.Client{Transport: tr}}
}

func newTestServer(t testing.TB, opts server.Options) *testServer {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Create: true, Shards: 4, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the server's cleanup (cleanups run last first)
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	srv := serveRun(t, server.New(st, opts))
	c := client.New(strings.TrimPrefix(srv.URL, "http://"))
	t.Cleanup(func() { c.Close() })
	return &testServer{t: t, st: st, srv: srv, c: c}
}

// answer is a response read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// errorMessage returns the "error" field of a JSON error answer, failing
// the test if the body is not one.
func (a answer) errorMessage(t testing.TB) string {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(a.body, &eb); err != nil || eb.Error == "" {
		t.Fatalf("answer %d is not a JSON error body: %q", a.status, a.body)
	}
	return eb.Error
}

// do sends a raw request; path is used as is (already escaped).
func (ts *testServer) do(method, path string, body io.Reader) answer {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.srv.URL+path, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	resp, err := ts.srv.Client().Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func (ts *testServer) doString(method, path, body string) answer {
	ts.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return ts.do(method, path, r)
}

// state is what a request that must change nothing must leave unchanged.
type state struct {
	index uint64
	hash  string
}

func (ts *testServer) state() state {
	snap := ts.st.Snapshot()
	return state{snap.Index(), format.FormatStateHash(snap.Hash())}
}

func (ts *testServer) mustPut(key, value string) uint64 {
	ts.t.Helper()
	idx, err := ts.c.Put(ts.t.Context(), key, []byte(value))
	if err != nil {
		ts.t.Fatalf("put %q: %v", key, err)
	}
	return idx
}

func decodeJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
