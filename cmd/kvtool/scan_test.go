package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// scanKeys is how many keys the streaming tests scan: more than a page of
// the HTTP API and more than a table holds back to size its columns.
const scanKeys = 4000

// scanStore is a closed data directory holding scanKeys keys.
func scanStore(t *testing.T) string {
	t.Helper()
	data := smallDataDir(t)
	st, err := store.Open(store.Options{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < scanKeys; i += 500 {
		txn := &store.Txn{}
		for j := i; j < i+500; j++ {
			txn.Ops = append(txn.Ops, store.Op{Kind: store.OpPut, Key: fmt.Sprintf("key:%05d", j), Value: []byte(fmt.Sprintf("value %05d", j))})
		}
		if _, err := st.Commit(context.Background(), txn); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return data
}

// firstWrite is an output that records, at its first write, what the
// probe returns then.
type firstWrite struct {
	mu      sync.Mutex
	b       strings.Builder
	probe   func() int64
	atFirst int64 // -1 until the first write
	written chan struct{}
}

func newFirstWrite(probe func() int64) *firstWrite {
	return &firstWrite{probe: probe, atFirst: -1, written: make(chan struct{})}
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.atFirst < 0 && len(p) > 0 {
		w.atFirst = w.probe()
		close(w.written)
	}
	return w.b.Write(p)
}

// runWith runs kvtool with stdout going to w.
func runWith(t *testing.T, w *firstWrite, args ...string) (stderr string, code int) {
	t.Helper()
	var errw strings.Builder
	e := env{stdin: strings.NewReader(""), stdout: w, stderr: &errw, fs: vfs.Default}
	code = execute(context.Background(), append([]string{"kvtool"}, args...), e)
	return errw.String(), code
}

// TestScanStreamsData checks that a scan of --data prints its first rows
// before it has read its last key.
func TestScanStreamsData(t *testing.T) {
	data := scanStore(t)
	var visited atomic.Int64
	scanVisited = func(string) { visited.Add(1) }
	defer func() { scanVisited = nil }()
	for _, args := range [][]string{{"scan"}, {"scan", "--json"}} {
		visited.Store(0)
		out := newFirstWrite(visited.Load)
		stderr, code := runWith(t, out, append(args, "--data", data)...)
		mustCode(t, code, exitOK, out.b.String(), stderr)
		if n := strings.Count(out.b.String(), "key:"); n != scanKeys {
			t.Fatalf("%v printed %d keys, want %d", args, n, scanKeys)
		}
		if out.atFirst < 1 || out.atFirst >= scanKeys {
			t.Errorf("%v: the first output came after %d of %d keys were read; want it to stream", args, out.atFirst, scanKeys)
		}
	}
}

// gatedWriter holds back a scan answer once the server has sent after
// bytes (counting every request), until the command has printed something
// or a generous deadline passed.
type gatedWriter struct {
	http.ResponseWriter
	sent    *atomic.Int64
	after   int64
	open    <-chan struct{}
	stalled *atomic.Bool
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	if g.sent.Add(int64(len(p)))-int64(len(p)) >= g.after {
		select {
		case <-g.open:
		case <-time.After(60 * time.Second):
			g.stalled.Store(true)
		}
	}
	return g.ResponseWriter.Write(p)
}

func (g *gatedWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// TestScanStreamsAddr checks that a scan through a server prints its first
// rows while the server is still sending: the server stops after 96KiB
// until the command has printed something.
func TestScanStreamsAddr(t *testing.T) {
	st, err := store.Open(store.Options{Dir: scanStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := server.New(st, server.Options{})
	for _, args := range [][]string{{"scan"}, {"scan", "--json"}} {
		out := newFirstWrite(func() int64 { return 0 })
		var sent atomic.Int64
		var stalled atomic.Bool
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/scan" {
				w = &gatedWriter{ResponseWriter: w, sent: &sent, after: 96 << 10, open: out.written, stalled: &stalled}
			}
			h.ServeHTTP(w, r)
		}))
		stderr, code := runWith(t, out, append(args, "--addr", srv.Listener.Addr().String())...)
		srv.Close()
		mustCode(t, code, exitOK, out.b.String(), stderr)
		if n := strings.Count(out.b.String(), "key:"); n != scanKeys {
			t.Fatalf("%v printed %d keys, want %d", args, n, scanKeys)
		}
		if stalled.Load() {
			t.Errorf("%v printed nothing while the server waited with the rest of the range: it does not stream", args)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}
