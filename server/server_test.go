package server_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/server"
)

// keys that routing must not clean, split or unescape wrongly.
var awkwardKeys = []string{
	"plain", "a/b", "a//b", "/lead", "trail/", ".", "..", "x/../y", "./z",
	"sp ace", "%", "%2F", "?q=1", "#frag", "tab\tnl\n", "ü∑", "\xff\xfe", "+plus", "semi;colon",
}

func TestKVRoundTrip(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	for i, key := range awkwardKeys {
		val := "value " + strconv.Itoa(i)
		idx := ts.mustPut(key, val)
		a := ts.do(http.MethodGet, client.KeyPath(key), nil)
		if a.status != http.StatusOK || string(a.body) != val {
			t.Fatalf("get %q: %d %q, want 200 %q", key, a.status, a.body, val)
		}
		if got := a.header.Get(api.IndexHeader); got != strconv.FormatUint(idx, 10) {
			t.Errorf("get %q: %s = %q, want %d", key, api.IndexHeader, got, idx)
		}
		if ct := a.header.Get("Content-Type"); ct != "application/octet-stream" {
			t.Errorf("get %q: Content-Type %q", key, ct)
		}
	}
	// Every key landed under its own name: nothing was cleaned or merged.
	if n := ts.st.Snapshot().Len(); n != len(awkwardKeys) {
		t.Fatalf("store holds %d keys, want %d", n, len(awkwardKeys))
	}
	for _, key := range awkwardKeys {
		if _, ok := ts.st.Snapshot().Get(key); !ok {
			t.Errorf("key %q missing from the store", key)
		}
	}
}

func TestPutBinaryAndEmptyValue(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	for _, val := range [][]byte{{}, {0, 1, 2, 0xff}, []byte(strings.Repeat("x", 1<<20))} {
		if _, err := ts.c.Put(t.Context(), "k", val); err != nil {
			t.Fatal(err)
		}
		got, _, err := ts.c.Get(t.Context(), "k")
		if err != nil || string(got) != string(val) {
			t.Fatalf("get: %d bytes, %v; want %d bytes", len(got), err, len(val))
		}
	}
}

func TestGetAbsentAndDelete(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	idx := ts.mustPut("k", "v")
	a := ts.do(http.MethodGet, client.KeyPath("missing"), nil)
	if a.status != http.StatusNotFound || a.errorMessage(t) != "key not found" {
		t.Fatalf("get missing: %d %q", a.status, a.body)
	}
	if a.header.Get(api.IndexHeader) != strconv.FormatUint(idx, 10) {
		t.Errorf("404 carries %s %q, want %d", api.IndexHeader, a.header.Get(api.IndexHeader), idx)
	}
	a = ts.do(http.MethodDelete, client.KeyPath("k"), nil)
	var res api.IndexResult
	decodeJSON(t, a.body, &res)
	if a.status != http.StatusOK || res.Index != idx+1 {
		t.Fatalf("delete: %d %q, want 200 index %d", a.status, a.body, idx+1)
	}
	if _, _, err := ts.c.Get(t.Context(), "k"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
	// Deleting an absent key succeeds and logs nothing.
	before := ts.state()
	if a := ts.do(http.MethodDelete, client.KeyPath("k"), nil); a.status != http.StatusOK {
		t.Fatalf("delete absent: %d %q", a.status, a.body)
	}
	if after := ts.state(); after != before {
		t.Fatalf("deleting an absent key changed the state: %v -> %v", before, after)
	}
}

func TestTxn(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	a := ts.doString(http.MethodPost, "/v1/txn", `{"ops":[
		{"op":"put","key":"acct:1","value":"100"},
		{"op":"put","key":"acct:2","value":"0"},
		{"op":"put","key":"bin","value_base64":"AP8="}]}`)
	if a.status != http.StatusOK {
		t.Fatalf("init txn: %d %q", a.status, a.body)
	}
	a = ts.doString(http.MethodPost, "/v1/txn", `{"ops":[
		{"op":"add","key":"acct:1","delta":-30},
		{"op":"add","key":"acct:2","delta":30},
		{"op":"check","key":"acct:1","min":0},
		{"op":"check","key":"bin","exists":true}]}`)
	var res api.IndexResult
	decodeJSON(t, a.body, &res)
	if a.status != http.StatusOK || res.Index != 2 {
		t.Fatalf("transfer: %d %q, want 200 index 2", a.status, a.body)
	}
	want := map[string]string{"acct:1": "70", "acct:2": "30", "bin": "\x00\xff"}
	for k, v := range want {
		if got, _ := ts.st.Get(k); string(got) != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestTxnCheckFailed(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	ts.mustPut("acct:1", "10")
	before := ts.state()
	a := ts.doString(http.MethodPost, "/v1/txn", `{"ops":[
		{"op":"add","key":"acct:1","delta":-30},
		{"op":"add","key":"acct:2","delta":30},
		{"op":"check","key":"acct:1","min":0}]}`)
	if a.status != http.StatusConflict {
		t.Fatalf("overdraft: %d %q, want 409", a.status, a.body)
	}
	var eb api.ErrorBody
	decodeJSON(t, a.body, &eb)
	if eb.Op == nil || *eb.Op != 2 || eb.Key != "acct:1" || !strings.Contains(eb.Error, "below the minimum") {
		t.Fatalf("409 body %q: want op 2, key acct:1 and the reason", a.body)
	}
	if after := ts.state(); after != before {
		t.Fatalf("aborted transaction changed the state: %v -> %v", before, after)
	}
	// The client turns it into a *CheckFailedError.
	_, err := ts.c.Txn(t.Context(), api.AddOp("acct:1", -30), api.CheckMinOp("acct:1", 0))
	var cfe *client.CheckFailedError
	if !errors.As(err, &cfe) || cfe.Op != 1 || !errors.Is(err, client.ErrCheckFailed) {
		t.Fatalf("client txn: %v, want *CheckFailedError at op 1", err)
	}
}

func TestScan(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	for _, k := range []string{"a", "b/1", "b/2", "b/3", "c"} {
		ts.mustPut(k, "v"+k)
	}
	ts.mustPut("bin", "\xff")
	cases := []struct {
		query string
		keys  string
		more  bool
	}{
		{"", "a b/1 b/2 b/3 bin c", false},
		{"?prefix=b/", "b/1 b/2 b/3", false},
		{"?start=b/2", "b/2 b/3 bin c", false},
		{"?start=b/2&end=c", "b/2 b/3 bin", false},
		{"?prefix=b/&limit=2", "b/1 b/2", true},
		{"?prefix=b/&limit=3", "b/1 b/2 b/3", false},
		{"?prefix=zzz", "", false},
		{"?start=c&end=a", "", false},
	}
	for _, c := range cases {
		a := ts.do(http.MethodGet, "/v1/scan"+c.query, nil)
		if a.status != http.StatusOK {
			t.Fatalf("scan%s: %d %q", c.query, a.status, a.body)
		}
		var pairs []api.Pair
		decodeJSON(t, a.body, &pairs)
		var keys []string
		for _, p := range pairs {
			keys = append(keys, p.Key)
			if want := "v" + p.Key; p.Key != "bin" && string(p.Value) != want {
				t.Errorf("scan%s: %s = %q, want %q", c.query, p.Key, p.Value, want)
			}
		}
		if got := strings.Join(keys, " "); got != c.keys {
			t.Errorf("scan%s: keys %q, want %q", c.query, got, c.keys)
		}
		if more := a.header.Get(api.MoreHeader) == "true"; more != c.more {
			t.Errorf("scan%s: more = %v, want %v", c.query, more, c.more)
		}
		if a.header.Get(api.IndexHeader) != "6" {
			t.Errorf("scan%s: index header %q, want 6", c.query, a.header.Get(api.IndexHeader))
		}
	}
}

func TestScanEncoding(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	ts.mustPut("bin", "\xff\x00")
	ts.mustPut("text", "héllo")
	ts.mustPut("\xfekey", "x")
	a := ts.do(http.MethodGet, "/v1/scan", nil)
	want := `[{"key":"bin","value_base64":"/wA="},{"key":"text","value":"héllo"},{"key_base64":"/mtleQ==","value":"x"}]` + "\n"
	if string(a.body) != want {
		t.Fatalf("scan body\n got %s\nwant %s", a.body, want)
	}
	a = ts.do(http.MethodGet, "/v1/scan?prefix=none", nil)
	if string(a.body) != "[]\n" {
		t.Fatalf("empty scan body %q, want []", a.body)
	}
}

func TestScanPagesByBytes(t *testing.T) {
	ts := newTestServer(t, server.Options{ScanBytes: 25})
	for i := range 10 {
		ts.mustPut("k"+strconv.Itoa(i), strings.Repeat("v", 10))
	}
	a := ts.do(http.MethodGet, "/v1/scan", nil)
	var pairs []api.Pair
	decodeJSON(t, a.body, &pairs)
	if len(pairs) != 3 || a.header.Get(api.MoreHeader) != "true" {
		t.Fatalf("byte-bounded page: %d pairs, more %q; want 3 and true", len(pairs), a.header.Get(api.MoreHeader))
	}
	// The client pages through all of them.
	var n int
	if err := ts.c.Scan(t.Context(), client.ScanOptions{}, func(api.Pair) bool { n++; return true }); err != nil || n != 10 {
		t.Fatalf("client scan: %d pairs, %v; want 10", n, err)
	}
	n = 0
	if err := ts.c.Scan(t.Context(), client.ScanOptions{Limit: 4}, func(api.Pair) bool { n++; return true }); err != nil || n != 4 {
		t.Fatalf("client scan limit 4: %d pairs, %v", n, err)
	}
}

func TestScanBadParameters(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	for _, q := range []string{"?limit=0", "?limit=-1", "?limit=x", "?limit=10001", "?prefx=a"} {
		a := ts.do(http.MethodGet, "/v1/scan"+q, nil)
		if a.status != http.StatusBadRequest {
			t.Errorf("scan%s: %d %q, want 400", q, a.status, a.body)
			continue
		}
		t.Logf("scan%s: %s", q, a.errorMessage(t))
	}
}

func TestStatusHashRotate(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	ts.mustPut("a", "1")
	ts.mustPut("b", "2")
	st, err := ts.c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.AppliedIndex != 2 || st.DurableIndex != 2 || st.Shards != 4 || st.Keys != 2 || len(st.Segments) != 1 ||
		st.WALBytes == 0 || st.DataDir != ts.st.Dir() || len(st.StoreID) != 32 || st.Failed != "" {
		t.Fatalf("status %+v", st)
	}
	h, err := ts.c.Hash(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := ts.state(); h.AppliedIndex != want.index || h.StateHash != want.hash || len(h.StateHash) != 16 {
		t.Fatalf("hash %+v, want %+v", h, want)
	}
	rot, err := ts.c.Rotate(t.Context())
	if err != nil || rot.FirstIndex != 3 || rot.Segment == "" {
		t.Fatalf("rotate: %+v, %v; want a new segment at index 3", rot, err)
	}
	ts.mustPut("c", "3")
	st, _ = ts.c.Status(t.Context())
	if len(st.Segments) != 2 || st.Segments[1].FirstIndex != 3 || st.Segments[1].LastIndex != 3 || st.WALLastIndex != 3 {
		t.Fatalf("status after rotate: %+v", st.Segments)
	}
	a := ts.do(http.MethodGet, "/v1/status", nil)
	for _, field := range []string{`"applied_index"`, `"durable_index"`, `"store_id"`, `"data_dir"`, `"segments"`, `"wal_bytes"`, `"checkpoint"`, `"deltas"`} {
		if !strings.Contains(string(a.body), field) {
			t.Errorf("status JSON lacks %s: %s", field, a.body)
		}
	}
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	ts.mustPut("a", "1")
	ts.doString(http.MethodPost, "/v1/txn", `{"ops":[{"op":"check","key":"a","equals":"2"}]}`)
	ts.doString(http.MethodPost, "/v1/txn", `{`)
	ts.do(http.MethodGet, client.KeyPath("secret-key-name"), nil)
	a := ts.do(http.MethodGet, "/metrics", nil)
	if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %q", a.status, a.header.Get("Content-Type"))
	}
	body := string(a.body)
	for _, want := range []string{
		`kvtool_commits_total{result="ok"} 1`,
		`kvtool_commits_total{result="aborted"} 1`,
		`kvtool_commits_total{result="invalid"} 1`,
		`kvtool_commit_duration_seconds_count 1`,
		`kvtool_applied_index 1`,
		`kvtool_durable_index 1`,
		`kvtool_wal_bytes `,
		`kvtool_wal_segments 1`,
		`kvtool_http_requests_total{code="404",method="GET",route="GET /v1/kv/{key...}"} 1`,
		`kvtool_http_requests_total{code="409",method="POST",route="POST /v1/txn"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, "secret-key-name") {
		t.Error("a key leaked into metric labels")
	}
}

func TestMethodNotAllowedAndNotFound(t *testing.T) {
	ts := newTestServer(t, server.Options{})
	cases := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodPost, client.KeyPath("k"), http.StatusMethodNotAllowed, "GET, PUT, DELETE"},
		{http.MethodGet, "/v1/txn", http.StatusMethodNotAllowed, "POST"},
		{http.MethodDelete, "/v1/scan", http.StatusMethodNotAllowed, "GET"},
		{http.MethodGet, "/v1/admin/rotate", http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/v2/kv/k", http.StatusNotFound, ""},
		{http.MethodGet, "/", http.StatusNotFound, ""},
	}
	for _, c := range cases {
		a := ts.do(c.method, c.path, nil)
		if a.status != c.status || a.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want %d Allow %q", c.method, c.path, a.status, a.header.Get("Allow"), c.status, c.allow)
		}
		if a.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, a.header.Get("Content-Type"))
		}
		a.errorMessage(t)
	}
}
