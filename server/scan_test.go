package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/api"
	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/server"
)

// TestScanLines checks ?format=jsonl: the whole range from one snapshot as
// JSON lines, past the page limit and byte budget of a JSON page, bounded
// only by an explicit limit.
func TestScanLines(t *testing.T) {
	ts := newTestServer(t, server.Options{ScanLimit: 2, MaxScan: 3, ScanBytes: 10})
	for i := range 12 {
		ts.mustPut(fmt.Sprintf("k%02d", i), strings.Repeat("v", 8))
	}
	ts.mustPut("bin", "\xff")
	for _, c := range []struct {
		query string
		lines int
	}{
		{"?format=jsonl", 13},
		{"?format=jsonl&prefix=k", 12},
		{"?format=jsonl&prefix=k&limit=5", 5},
		{"?format=jsonl&prefix=zzz", 0},
	} {
		a := ts.do(http.MethodGet, "/v1/scan"+c.query, nil)
		if a.status != http.StatusOK || a.header.Get("Content-Type") != api.JSONLinesType || a.header.Get(api.IndexHeader) != "13" {
			t.Fatalf("scan%s: %d %v %q", c.query, a.status, a.header, a.body)
		}
		lines := strings.Split(strings.TrimSuffix(string(a.body), "\n"), "\n")
		if len(a.body) == 0 {
			lines = nil
		}
		if len(lines) != c.lines {
			t.Errorf("scan%s: %d lines, want %d:\n%s", c.query, len(lines), c.lines, a.body)
		}
		if c.lines == 13 && lines[0] != `{"key":"bin","value_base64":"/w=="}` {
			t.Errorf("scan%s: first line %s", c.query, lines[0])
		}
	}
	a := ts.do(http.MethodGet, "/v1/scan?format=xml", nil)
	if a.status != http.StatusBadRequest || !strings.Contains(a.errorMessage(t), `format "xml"`) {
		t.Errorf("scan?format=xml: %d %s", a.status, a.body)
	}
	// The client streams the whole range in one request.
	n := 0
	if err := ts.c.Scan(t.Context(), client.ScanOptions{Prefix: "k"}, func(api.Pair) bool { n++; return true }); err != nil || n != 12 {
		t.Errorf("client scan: %d pairs, %v; want 12", n, err)
	}
}
