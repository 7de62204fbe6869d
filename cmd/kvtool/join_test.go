package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeJoinStopsOnPermanentError: a join that retrying cannot mend (a
// wrong secret, an address that is not a transfer listener) stops the node
// with exit 1 and says why, instead of reconnecting for ever.
func TestServeJoinStopsOnPermanentError(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	s := startServe(t, "--data", t.TempDir(), "--transfer-listen", "127.0.0.1:0")
	xaddr := transferAddr(t, s)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("another secret, long enough....\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, addr string
		args       []string
		want       string
	}{
		{"wrong secret", xaddr, []string{"--secret-file", secret}, "secrets differ"},
		{"not a transfer listener", s.addr, nil, "--join needs the source's --transfer-listen address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "replica")
			j := startKvtool(t, nil, append([]string{"serve", "--json", "--listen", "127.0.0.1:0", "--data", dir, "--join", c.addr}, c.args...)...)
			mustCode(t, j.wait(t), exitFailure, j.stdout.String(), j.stderr.String())
			if errOut := j.stderr.String(); !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "retrying cannot help") {
				t.Fatalf("stderr does not say %q and that retrying cannot help:\n%s", c.want, errOut)
			}
		})
	}
}

// TestServeJoinRetriesTransient: a source that is not there (yet) is
// retried, and the join's status counts the attempts.
func TestServeJoinRetriesTransient(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	j := startServe(t, "--data", filepath.Join(t.TempDir(), "replica"), "--join", refusedAddr(t))
	waitUntil(t, "a second attempt in the join's status", func() bool {
		resp, err := http.Get("http://" + j.addr + "/v1/transfers")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Join map[string]any `json:"join"`
		}
		if json.NewDecoder(resp.Body).Decode(&st) != nil {
			return false
		}
		n, _ := st.Join["attempts"].(float64)
		return n >= 2 && st.Join["error"] != nil
	})
}
