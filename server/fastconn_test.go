package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

// rawExchange sends raw (one or more requests) on a new connection to
// addr and reads n answers.
func rawExchange(t *testing.T, addr, raw string, n int) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for i := range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d of %q: %v", i+1, raw, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("answer %d of %q: body: %v", i+1, raw, err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		out = append(out, resp)
	}
	return out
}

// describe is what a client sees of an answer: the status, the headers
// (but Date) and the body.
func describe(r *http.Response) string {
	var keys []string
	for k := range r.Header {
		if k != "Date" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s close=%v\n", r.Status, r.Close)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %q\n", k, r.Header[k])
	}
	body, _ := io.ReadAll(r.Body)
	fmt.Fprintf(&b, "\n%q", body)
	return b.String()
}

// TestFastPathAnswersAsNetHTTP sends the same requests, byte for byte, to
// the handler served by net/http alone (httptest) and by server.Run (the
// fast key path, handing the rest to net/http), each over its own store
// fed the same sequence: every answer must read the same to a client. The
// requests cover the key path's cases and the ones the fast path must hand
// over.
func TestFastPathAnswersAsNetHTTP(t *testing.T) {
	opts := server.Options{MaxPutBody: 64}
	open := func() *store.Store {
		st, err := store.Open(store.Options{Dir: t.TempDir(), Create: true, Shards: 4, SegmentSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	plain := httptest.NewServer(server.New(open(), opts))
	defer plain.Close()
	fast := serveRun(t, server.New(open(), opts))
	addrs := []string{plain.Listener.Addr().String(), strings.TrimPrefix(fast.URL, "http://")}

	const h = "Host: x\r\n"
	reqs := []string{
		"PUT /v1/kv/a HTTP/1.1\r\n" + h + "Content-Length: 5\r\n\r\nhello",
		"GET /v1/kv/a HTTP/1.1\r\n" + h + "\r\n",
		"GET /v1/kv/a HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n",
		"GET /v1/kv/missing HTTP/1.1\r\n" + h + "\r\n",
		"PUT /v1/kv/dir%2Fk%20x HTTP/1.1\r\n" + h + "Content-Length: 0\r\n\r\n",
		"GET /v1/kv/dir%2Fk%20x HTTP/1.1\r\n" + h + "\r\n",
		"GET /v1/kv/dir/./k HTTP/1.1\r\n" + h + "\r\n",
		"GET /v1/kv/ HTTP/1.1\r\n" + h + "\r\n",
		"GET /v1/kv/%zz HTTP/1.1\r\n" + h + "\r\n",
		"GET /v1/kv/a?consistency=bogus HTTP/1.1\r\n" + h + "\r\n",
		"GET /v1/kv/a?consistency=local HTTP/1.1\r\n" + h + "\r\n",
		"GET /v1/kv/a HTTP/1.0\r\n\r\n",
		"GET /v1/kv/a HTTP/1.1\r\n\r\n", // no Host
		"PATCH /v1/kv/a HTTP/1.1\r\n" + h + "\r\n",
		"PUT /v1/kv/big HTTP/1.1\r\n" + h + "Content-Length: 100\r\n\r\n" + strings.Repeat("v", 100),
		"PUT /v1/kv/chunked HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"PUT /v1/kv/nolength HTTP/1.1\r\n" + h + "\r\n",
		"PUT /v1/kv/a HTTP/1.1\r\n" + h + "Content-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
		"PUT /v1/kv/a HTTP/1.1\r\n" + h + "Bad Header: x\r\nContent-Length: 1\r\n\r\nz",
		"DELETE /v1/kv/a HTTP/1.1\r\n" + h + "\r\n",
		"GET /v1/kv/a HTTP/1.1\r\n" + h + "\r\n",
		txn(`{"ops":[{"op":"put","key":"t","value":"1"},{"op":"add","key":"n","delta":2}]}`),
		txn(`{"ops":[{"op":"check","key":"t","equals":"2"}]}`),
		txn(`{"ops":[`),
		txn(``),
		"POST /v1/txn?x=1 HTTP/1.1\r\n" + h + "Content-Length: 2\r\n\r\n{}",
		"GET /v1/kv/n HTTP/1.1\r\n" + h + "\r\n",
		"GET /v1/status HTTP/1.1\r\n" + h + "\r\n",
	}
	before := server.FastServed()
	for _, raw := range reqs {
		var got [2]string
		for i, addr := range addrs {
			got[i] = describe(rawExchange(t, addr, raw, 1)[0])
		}
		if strings.HasPrefix(raw, "GET /v1/status") {
			continue // its figures differ between two stores; it must only answer
		}
		if got[0] != got[1] {
			t.Errorf("request %q:\nnet/http answered\n%s\n\nserver.Run answered\n%s", raw, got[0], got[1])
		}
	}
	if n := server.FastServed() - before; n < 12 {
		t.Errorf("the fast path served %d of the requests, want at least the 12 simple ones", n)
	}
}

// txn is a raw POST /v1/txn of body.
func txn(body string) string {
	return fmt.Sprintf("POST /v1/txn HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// TestFastPathHandsOverMidConnection pipelines key requests, then one the
// fast path does not serve, then key requests again on one connection:
// net/http takes the connection over from the request it does not serve,
// with the bytes already read, and answers the rest in order.
func TestFastPathHandsOverMidConnection(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	addr := strings.TrimPrefix(ts.srv.URL, "http://")
	raw := "PUT /v1/kv/p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none" +
		"GET /v1/kv/p HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n" +
		"PUT /v1/kv/p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo" +
		"GET /v1/kv/p HTTP/1.1\r\nHost: x\r\n\r\n"
	before := server.FastServed()
	resps := rawExchange(t, addr, raw, 5)
	want := []struct {
		status int
		body   string
	}{{200, `{"index":1}` + "\n"}, {200, "one"}, {200, ""}, {200, `{"index":2}` + "\n"}, {200, "two"}}
	for i, w := range want {
		b, _ := io.ReadAll(resps[i].Body)
		if resps[i].StatusCode != w.status || (w.body != "" && string(b) != w.body) {
			t.Errorf("answer %d: %d %q, want %d %q", i+1, resps[i].StatusCode, b, w.status, w.body)
		}
		if resps[i].Header.Get("Server") != "kvtool/v1" {
			t.Errorf("answer %d has Server %q", i+1, resps[i].Header.Get("Server"))
		}
	}
	if got := resps[1].Header.Get("X-Kvtool-Index"); got != "1" {
		t.Errorf("GET's X-Kvtool-Index = %q, want 1", got)
	}
	if n := server.FastServed() - before; n != 2 {
		t.Errorf("the fast path served %d requests, want the 2 before the handover", n)
	}
}

// TestFastPathPipelinedHeadersAsNetHTTP pipelines requests on one
// connection whose header lines repeat, change and come back (the fast
// path remembers the lines a connection sent), to net/http alone and to
// server.Run over stores fed the same: every answer must read the same.
func TestFastPathPipelinedHeadersAsNetHTTP(t *testing.T) {
	open := func() *store.Store {
		st, err := store.Open(store.Options{Dir: t.TempDir(), Create: true, Shards: 4, SegmentSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	plain := httptest.NewServer(server.New(open(), server.Options{}))
	defer plain.Close()
	fast := serveRun(t, server.New(open(), server.Options{}))
	put := func(key, val string, extra string) string {
		return fmt.Sprintf("PUT /v1/kv/%s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s", key, extra, len(val), val)
	}
	get := func(key, extra string) string {
		return "GET /v1/kv/" + key + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n"
	}
	reqs := []string{
		put("a", "one", ""), put("b", "three", ""), put("c", "two", "Accept: x\r\nAccept: x\r\n"),
		put("d", "one", "Content-Type: text/plain\r\n"), get("a", ""), get("b", "Accept: x\r\n"),
		get("c", "Accept: x\r\nAccept: x\r\n"), get("d", ""), get("e", ""), put("a", "xyz", ""),
		get("a", "Connection: close\r\n"),
	}
	raw := strings.Join(reqs, "")
	before := server.FastServed()
	var got [2][]string
	for i, addr := range []string{plain.Listener.Addr().String(), strings.TrimPrefix(fast.URL, "http://")} {
		for _, r := range rawExchange(t, addr, raw, len(reqs)) {
			got[i] = append(got[i], describe(r))
		}
	}
	for i := range reqs {
		if got[0][i] != got[1][i] {
			t.Errorf("answer %d (%q):\nnet/http answered\n%s\n\nserver.Run answered\n%s", i+1, reqs[i], got[0][i], got[1][i])
		}
	}
	if n := server.FastServed() - before; n != int64(len(reqs)) {
		t.Errorf("the fast path served %d of the %d requests", n, len(reqs))
	}
}
