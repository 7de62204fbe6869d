package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/server"
	"github.com/kvtool/kvtool/store"
)

// TestKeysAddressedExactly: a key holding "//", "/./" or "/../" is the
// key the path names, never another one: no cleaning, no redirect. A
// client that follows redirects (as net/http does) must not delete
// "victim" by deleting "x/../victim".
func TestKeysAddressedExactly(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	ts.mustPut("victim", "keep")
	hc := &http.Client{} // follows redirects
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, ts.srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, key := range []string{"x/../victim", "a//b", "a/./b", "./c", "../d", "e/", "f/..", "/g", "h/%2E%2E/i"} {
		raw := "/v1/kv/" + key
		if code, body := do(http.MethodPut, raw, "v:"+key); code != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", raw, code, body)
		}
		want := key
		if key == "h/%2E%2E/i" {
			want = "h/../i" // percent-decoded, and still not cleaned
		}
		if v, _, err := ts.c.Get(t.Context(), want); err != nil || string(v) != "v:"+key {
			t.Fatalf("key %q: %q %v", want, v, err)
		}
		if code, body := do(http.MethodGet, raw, ""); code != http.StatusOK || body != "v:"+key {
			t.Fatalf("GET %s: %d %q", raw, code, body)
		}
		if code, body := do(http.MethodDelete, raw, ""); code != http.StatusOK {
			t.Fatalf("DELETE %s: %d %s", raw, code, body)
		}
		if _, _, err := ts.c.Get(t.Context(), want); err == nil {
			t.Fatalf("key %q survived its DELETE", want)
		}
	}
	if v, _, err := ts.c.Get(t.Context(), "victim"); err != nil || string(v) != "keep" {
		t.Fatalf("victim: %q %v", v, err)
	}
	// Other endpoints are not redirected either.
	if code, _ := do(http.MethodGet, "/v1//status", ""); code != http.StatusNotFound {
		t.Fatalf("GET /v1//status: %d, want 404", code)
	}
}

// TestTxnRejectsInvalidUTF8: a transaction whose key is not valid UTF-8 is
// refused naming the op; the same bytes as key_base64 are two distinct
// keys.
func TestTxnRejectsInvalidUTF8(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	before := ts.state()
	a := ts.do(http.MethodPost, "/v1/txn", bytes.NewReader(txnJSON(`{"op":"put","key":"ok","value":"1"},{"op":"put","key":"k`+"\xff"+`","value":"a"}`)))
	if msg := a.errorMessage(t); a.status != http.StatusBadRequest || !strings.Contains(msg, "op 1: key is not valid UTF-8") {
		t.Fatalf("%d %q", a.status, msg)
	}
	if ts.state() != before {
		t.Fatal("a refused transaction changed the state")
	}
	a = ts.do(http.MethodPost, "/v1/txn", bytes.NewReader(txnJSON(`{"op":"put","key_base64":"a/8=","value":"a"},{"op":"put","key_base64":"a/4=","value":"b"}`)))
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.body)
	}
	for key, want := range map[string]string{"k\xff": "a", "k\xfe": "b"} {
		if v, _, err := ts.c.Get(t.Context(), key); err != nil || string(v) != want {
			t.Fatalf("get %q: %q %v", key, v, err)
		}
	}
}

// tinyOps is a transaction body of about size bytes of the smallest
// operations.
func tinyOps(size int) []byte {
	const op, last = `{"op":"del","key":"a"},`, `{"op":"del","key":"a"}]}`
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(`{"ops":[`)
	for b.Len()+len(op)+len(last) <= size {
		b.WriteString(op)
	}
	b.WriteString(last)
	return b.Bytes()
}

// allocated returns the bytes f allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestTxnBodyMemoryBounded: a body of the largest size the server takes,
// made of tiny operations, is refused for its operation count after
// costing less memory than the body itself (it used to cost 15 times the
// body); a large transaction that commits costs a small multiple of its
// body.
func TestTxnBodyMemoryBounded(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	h := server.New(ts.st, server.Options{})
	body := tinyOps(server.MaxTxnBody)
	var code int
	var msg string
	n := allocated(func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/txn", bytes.NewReader(body)))
		code, msg = rec.Code, rec.Body.String()
	})
	t.Logf("%d-byte body of tiny ops: %d, %d bytes allocated (%.2fx the body)", len(body), code, n, float64(n)/float64(len(body)))
	if code != http.StatusBadRequest || !strings.Contains(msg, "operations") {
		t.Fatalf("%d %s", code, msg)
	}
	if n > uint64(len(body)) {
		t.Fatalf("refusing a %d-byte body allocated %d bytes, more than the body", len(body), n)
	}

	val := strings.Repeat("v", format.MaxValueSize-100)
	var ops []api.Op
	for i := range store.MaxTxnBytes/format.MaxValueSize - 1 {
		ops = append(ops, api.PutOp(fmt.Sprint("big", i), val))
	}
	big, _ := json.Marshal(api.Txn{Ops: ops})
	n = allocated(func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/txn", bytes.NewReader(big)))
		code, msg = rec.Code, rec.Body.String()
	})
	t.Logf("%d-byte transaction of %d values: %d, %d bytes allocated (%.2fx the body)", len(big), len(ops), code, n, float64(n)/float64(len(big)))
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, msg)
	}
	if n > 6*uint64(len(big)) {
		t.Fatalf("committing a %d-byte transaction allocated %d bytes, more than 6 times the body", len(big), n)
	}
}

// TestInflightBudget: while one request holds the in-flight budget, a
// second one that does not fit is answered 503 with Retry-After, without
// its body being read; once the first is answered, the second fits.
func TestInflightBudget(t *testing.T) {
	ts := newTestServer(t, server.Options{MaxInflightBytes: 1 << 20})
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) }) // before the server closes, should the test fail
	req, _ := http.NewRequest(http.MethodPut, ts.srv.URL+client.KeyPath("slow"), pr)
	req.ContentLength = 600 << 10
	first := make(chan int, 1)
	go func() {
		resp, err := ts.srv.Client().Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	pw.Write(make([]byte, 1024))
	waitMetric(t, ts, "kvtool_http_inflight_body_bytes 614400")

	a := ts.do(http.MethodPut, client.KeyPath("second"), bytes.NewReader(make([]byte, 600<<10)))
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" || !strings.Contains(a.errorMessage(t), "busy") {
		t.Fatalf("second request: %d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	// A chunked body (no declared length) is charged as it is read.
	chunked := ts.do(http.MethodPost, "/v1/txn", io.MultiReader(strings.NewReader(`{"ops":[{"op":"put","key":"c","value":"`),
		strings.NewReader(strings.Repeat("x", 600<<10)), strings.NewReader(`"}]}`)))
	if chunked.status != http.StatusServiceUnavailable {
		t.Fatalf("chunked request: %d %s", chunked.status, chunked.body)
	}
	pw.Write(make([]byte, 600<<10-1024))
	pw.Close()
	if code := <-first; code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	waitMetric(t, ts, "kvtool_http_inflight_body_bytes 0")
	if a := ts.do(http.MethodPut, client.KeyPath("second"), bytes.NewReader(make([]byte, 600<<10))); a.status != http.StatusOK {
		t.Fatalf("second request, retried: %d %s", a.status, a.body)
	}
}

// waitMetric polls /metrics until a line equals line.
func waitMetric(t *testing.T, ts *testServer, line string) {
	t.Helper()
	waitUntil(t, "metric "+line, func() bool {
		a := ts.do(http.MethodGet, "/metrics", nil)
		sc := bufio.NewScanner(bytes.NewReader(a.body))
		for sc.Scan() {
			if sc.Text() == line {
				return true
			}
		}
		return false
	})
}

// waitUntil polls cond until it holds, failing the test after a generous
// deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
