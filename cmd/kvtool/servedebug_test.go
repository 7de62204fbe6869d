package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/vfs"
)

// TestServeDebugListen: --debug-listen serves Go's profiles on its own
// loopback listener, announced in the listening line; the API's listener
// does not serve them.
func TestServeDebugListen(t *testing.T) {
	s := startServe(t, "--data", t.TempDir(), "--debug-listen", "127.0.0.1:0")
	line, _, _ := strings.Cut(s.stdout.String(), "\n")
	var l listeningJSON
	if err := json.Unmarshal([]byte(line), &l); err != nil || l.DebugAddr == "" {
		t.Fatalf("listening line %q (%v): want a debug_addr", line, err)
	}
	get := func(url string) (int, string) {
		t.Helper()
		r, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		return r.StatusCode, string(b)
	}
	if code, body := get("http://" + l.DebugAddr + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("GET /debug/pprof/ on %s: %d %q, want 200 and the profiles' index", l.DebugAddr, code, body)
	}
	if code, body := get("http://" + l.DebugAddr + "/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("GET /debug/pprof/heap: %d %q, want 200 and a heap profile", code, body)
	}
	if code, _ := get("http://" + s.addr + "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ on the API: %d, want 404", code)
	}
}

// TestServeDebugListenRefusesRemote: an address other than loopback is a
// usage error (before anything is created) unless --debug-listen-any.
func TestServeDebugListenRefusesRemote(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:6060", "example.com:6060"} {
		data := filepath.Join(t.TempDir(), "d")
		// A serve that wrongly started stops after a while (exit 0).
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		var stderr lockedBuffer
		code := execute(ctx, []string{"kvtool", "serve", "--data", data, "--listen", "127.0.0.1:0", "--debug-listen", addr},
			env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr, fs: vfs.Default})
		cancel()
		if code != exitUsage || !strings.Contains(stderr.String(), "--debug-listen "+addr+" is not a loopback address") {
			t.Errorf("--debug-listen %s: exit %d, stderr %q; want %d and the refusal", addr, code, stderr.String(), exitUsage)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("--debug-listen %s created the data directory", addr)
		}
	}
	_, stderr := kvMust(t, exitUsage, "", "serve", "--data", filepath.Join(t.TempDir(), "d"), "--debug-listen", "nonsense")
	if !strings.Contains(stderr, "--debug-listen nonsense needs HOST:PORT") {
		t.Errorf("stderr %q, want HOST:PORT asked for", stderr)
	}
}
