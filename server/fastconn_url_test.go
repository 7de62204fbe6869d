package server

import (
	"net/url"
	"testing"
)

// TestRequestURLAsParseRequestURI checks the fast path's URL of a key
// target against net/http's parse of it (url.ParseRequestURI): the same
// Path, RawPath and EscapedPath, which route and the handlers read.
func TestRequestURLAsParseRequestURI(t *testing.T) {
	targets := []string{
		"/v1/kv/a", "/v1/kv/k000000000000042", "/v1/kv/dir/k", "/v1/kv/a%2Fb", "/v1/kv/a%20b",
		"/v1/kv/x!y", "/v1/kv/it's", "/v1/kv/(p)", "/v1/kv/a*b", "/v1/kv/a+b", "/v1/kv/$&,;=:@",
		"/v1/kv/-._~", "/v1/kv/%41", "/v1/kv/%e2%82%ac", "/v1/kv/a//b", "/v1/kv/./a", "/v1/kv/",
	}
	for _, target := range targets {
		if !fastTarget(target) {
			t.Fatalf("fastTarget(%q) is false: the test's targets must be ones the fast path takes", target)
		}
		want, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatal(err)
		}
		var got url.URL
		if !requestURL(&got, target) {
			t.Errorf("requestURL(%q) refused it", target)
			continue
		}
		if got != *want || got.EscapedPath() != want.EscapedPath() {
			t.Errorf("requestURL(%q) = %#v (escaped %q), net/http parses %#v (escaped %q)",
				target, got, got.EscapedPath(), *want, want.EscapedPath())
		}
	}
}
