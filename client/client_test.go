package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

func newServer(t *testing.T) *client.Client {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Create: true, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(st, server.Options{}))
	c := client.New("http://" + srv.Listener.Addr().String() + "/")
	t.Cleanup(func() { c.Close(); srv.Close(); st.Close() })
	return c
}

func TestClientOperations(t *testing.T) {
	c := newServer(t)
	ctx := t.Context()
	idx, err := c.Put(ctx, "a/b", []byte("1"))
	if err != nil || idx != 1 {
		t.Fatalf("put: %d, %v", idx, err)
	}
	val, gidx, err := c.Get(ctx, "a/b")
	if err != nil || string(val) != "1" || gidx != 1 {
		t.Fatalf("get: %q %d %v", val, gidx, err)
	}
	if idx, err = c.Txn(ctx, api.AddOp("a/b", 5), api.PutOp("c", "x"), api.CheckEqualsOp("a/b", "6"),
		api.CheckExistsOp("c", true), api.CheckMinOp("a/b", 6)); err != nil || idx != 2 {
		t.Fatalf("txn: %d, %v", idx, err)
	}
	if idx, err = c.TxnJSON(ctx, strings.NewReader(`{"ops":[{"op":"del","key":"c"}]}`)); err != nil || idx != 3 {
		t.Fatalf("txn json: %d, %v", idx, err)
	}
	if idx, err = c.Delete(ctx, "a/b"); err != nil || idx != 4 {
		t.Fatalf("delete: %d, %v", idx, err)
	}
	if _, gidx, err = c.Get(ctx, "a/b"); !errors.Is(err, client.ErrNotFound) || gidx != 4 {
		t.Fatalf("get deleted: %d, %v; want ErrNotFound at 4", gidx, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.AppliedIndex != 4 || st.Keys != 0 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	h, err := c.Hash(ctx)
	if err != nil || h.AppliedIndex != 4 || len(h.StateHash) != 16 {
		t.Fatalf("hash: %+v, %v", h, err)
	}
	if r, err := c.Rotate(ctx); err != nil || r.FirstIndex != 5 {
		t.Fatalf("rotate: %+v, %v", r, err)
	}
}

func TestClientErrors(t *testing.T) {
	c := newServer(t)
	ctx := t.Context()
	_, err := c.Put(ctx, "", []byte("x"))
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || !strings.Contains(e.Message, "empty key") {
		t.Fatalf("empty key: %v, want *Error 400", err)
	}
	_, err = c.Txn(ctx, api.CheckExistsOp("nope", true))
	var cfe *client.CheckFailedError
	if !errors.As(err, &cfe) || cfe.Op != 0 || cfe.Key != "nope" || cfe.Reason != "key does not exist" {
		t.Fatalf("failed check: %#v", err)
	}
	_, err = c.TxnJSON(ctx, strings.NewReader(`{`))
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
		t.Fatalf("malformed txn: %v", err)
	}
}

func TestClientNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = client.New(addr).Put(t.Context(), "k", nil)
	if !errors.Is(err, client.ErrNoServer) || !strings.Contains(err.Error(), "no kvtool server at "+addr) {
		t.Fatalf("got %v, want no kvtool server at %s", err, addr)
	}
}

// TestClientNotAKvtoolServer checks that an answer from another program at
// the address is never taken for a kvtool answer: its 404 is not a missing
// key, its HTML is not an error message.
func TestClientNotAKvtoolServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "nginx/1.25")
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "<html><body><h1>404 Not Found</h1></body></html>")
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	c := client.New(addr)
	ctx := t.Context()
	_, _, err := c.Get(ctx, "x")
	var nk *client.NotKvtoolError
	if errors.Is(err, client.ErrNotFound) || !errors.As(err, &nk) || nk.Status != http.StatusNotFound {
		t.Fatalf("get: %v, want a *NotKvtoolError, not ErrNotFound", err)
	}
	want := addr + " is not a kvtool server (it answered 404 Not Found, Server: nginx/1.25, text/html)"
	if err.Error() != want {
		t.Errorf("get: %q, want %q", err, want)
	}
	_, err = c.Put(ctx, "x", []byte("v"))
	if !errors.Is(err, client.ErrNotKvtool) || strings.Contains(err.Error(), "<html>") {
		t.Errorf("put: %v", err)
	}
	err = c.Scan(ctx, client.ScanOptions{}, func(client.Pair) bool { return true })
	if !errors.Is(err, client.ErrNotKvtool) || strings.Contains(err.Error(), "<html>") {
		t.Errorf("scan: %v", err)
	}
}

// TestClientTransferPort points a client at a kvtool transfer port, which
// greets in its own protocol instead of HTTP.
func TestClientTransferPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Write([]byte(format.MagicTransfer + "\x01\x00 hello"))
			conn.Close()
		}
	}()
	_, _, err = client.New(ln.Addr().String()).Get(t.Context(), "x")
	if !errors.Is(err, client.ErrNotKvtool) || !strings.Contains(err.Error(), "kvtool transfer port") {
		t.Fatalf("got %v, want a transfer port named", err)
	}
}

// TestClientErrorsNameNoURL checks that transport errors are in the user's
// terms: the address, never the request URL net/http reports.
func TestClientErrorsNameNoURL(t *testing.T) {
	c := newServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := c.Get(ctx, "k")
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "http://") || strings.Contains(err.Error(), `Get "`) {
		t.Fatalf("got %q", err)
	}
}

// TestServerIdentifies checks that a kvtool server marks every answer,
// errors and unknown paths included.
func TestServerIdentifies(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir(), Create: true, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(server.New(st, server.Options{}))
	defer srv.Close()
	for _, path := range []string{"/v1/status", "/v1/kv/missing", "/nope"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !api.IsKvtool(resp.Header) {
			t.Errorf("%s: Server header %q", path, resp.Header.Get("Server"))
		}
	}
}

func TestScanAllPages(t *testing.T) {
	c := newServer(t)
	var ops []api.Op
	for i := range 2500 {
		ops = append(ops, api.PutOp(strings.Repeat("k", 1+i%3)+string(rune('a'+i%26))+string(rune(0x100+i)), "v"))
	}
	if _, err := c.Txn(t.Context(), ops...); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := c.Scan(t.Context(), client.ScanOptions{}, func(p api.Pair) bool {
		keys = append(keys, p.Key)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2500 {
		t.Fatalf("scanned %d keys, want 2500", len(keys))
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] >= keys[i] {
			t.Fatalf("keys out of order at %d: %q >= %q", i, keys[i-1], keys[i])
		}
	}
	n := 0
	c.Scan(t.Context(), client.ScanOptions{Limit: 1500}, func(api.Pair) bool { n++; return true })
	if n != 1500 {
		t.Fatalf("limit 1500: %d", n)
	}
	n = 0
	c.Scan(t.Context(), client.ScanOptions{}, func(api.Pair) bool { n++; return n < 10 })
	if n != 10 {
		t.Fatalf("stop early: %d", n)
	}
}

func TestKeyPath(t *testing.T) {
	cases := map[string]string{
		"abc":      "/v1/kv/abc",
		"a/b":      "/v1/kv/a%2Fb",
		"..":       "/v1/kv/%2E%2E",
		"x y%":     "/v1/kv/x%20y%25",
		"\xff":     "/v1/kv/%FF",
		"A-Z_0~9":  "/v1/kv/A-Z_0~9",
		"ü":        "/v1/kv/%C3%BC",
		"?#&=+;:@": "/v1/kv/%3F%23%26%3D%2B%3B%3A%40",
	}
	for key, want := range cases {
		if got := client.KeyPath(key); got != want {
			t.Errorf("KeyPath(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestTxnBytesNotText: keys and values that are not valid UTF-8 travel in
// their _base64 forms, so two keys that differ only in such bytes stay two
// keys (JSON text would turn both into U+FFFD).
func TestTxnBytesNotText(t *testing.T) {
	c := newServer(t)
	ctx := t.Context()
	if _, err := c.Txn(ctx, api.PutOp("k\xff", "one\xfe"), api.PutOp("k\xfe", "two"), api.PutOp("k\uFFFD", "three")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Txn(ctx, api.CheckEqualsOp("k\xff", "one\xfe"), api.CheckExistsOp("k\xfe", true),
		api.AddOp("n\xff", 2), api.CheckMinOp("n\xff", 2), api.DelOp("k\uFFFD")); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"k\xff": "one\xfe", "k\xfe": "two", "n\xff": "2"} {
		if v, _, err := c.Get(ctx, key); err != nil || string(v) != want {
			t.Errorf("get %q: %q, %v; want %q", key, v, err, want)
		}
	}
	if _, _, err := c.Get(ctx, "k\uFFFD"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("get k\\uFFFD after its delete: %v", err)
	}
}
