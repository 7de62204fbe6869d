package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/client"
)

// progressDone matches the last line of a command's progress in a pipe.
func progressDone(label string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^kvtool: ` + label + `: done: [1-9][0-9.]*[KMG]?i?B in `)
}

// TestProgress checks that the long commands show progress with
// --progress (as lines, standard error being a buffer), none without it
// in a pipe, and none with --quiet; and that it never touches standard
// output.
func TestProgress(t *testing.T) {
	orig := newSnapDir(t).data
	for _, tc := range []struct {
		label string
		args  []string
	}{
		{"replay", []string{"replay"}},
		{"replay", []string{"replay", "--out", "OUT"}},
		{"verify", []string{"verify"}},
		{"verify", []string{"wal", "verify"}},
		{"verify", []string{"checkpoint", "verify"}},
		{"create", []string{"checkpoint", "create"}},
		{"merge", []string{"delta", "merge"}},
		{"compact", []string{"wal", "compact"}},
	} {
		name := strings.Join(tc.args, " ")
		t.Run(name, func(t *testing.T) {
			for _, mode := range []struct {
				flags []string
				shown bool
			}{{nil, false}, {[]string{"--progress", "--quiet"}, false}, {[]string{"--progress"}, true}, {[]string{"--progress", "--json"}, true}} {
				data := filepath.Join(t.TempDir(), "data")
				if err := os.CopyFS(data, os.DirFS(orig)); err != nil {
					t.Fatal(err)
				}
				args := append(append([]string{"--data", data}, tc.args...), mode.flags...)
				for i, a := range args {
					if a == "OUT" {
						args[i] = filepath.Join(t.TempDir(), "out.ckpt")
					}
				}
				stdout, stderr, code := run(t, args...)
				mustCode(t, code, exitOK, stdout, stderr)
				if shown := progressDone(tc.label).MatchString(stderr); shown != mode.shown {
					t.Errorf("%s %v: progress shown %v, want %v; stderr:\n%s", name, mode.flags, shown, mode.shown, stderr)
				}
				if strings.Contains(stdout, "kvtool: ") {
					t.Errorf("%s %v: progress on standard output:\n%s", name, mode.flags, stdout)
				}
			}
		})
	}
}

// TestJoinProgress checks that a joining node shows the snapshot's
// progress until it cut over.
func TestJoinProgress(t *testing.T) {
	t.Setenv("KVTOOL_SECRET", cliSecret)
	s := startServe(t, "--data", t.TempDir(), "--transfer-listen", "127.0.0.1:0")
	xaddr := transferAddr(t, s)
	c := client.New(s.addr)
	defer c.Close()
	for i := 0; i < 100; i++ {
		if _, err := c.Put(t.Context(), fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	j := startServe(t, "--data", filepath.Join(t.TempDir(), "replica"), "--join", xaddr, "--progress")
	waitUntil(t, "the join's progress to end", func() bool { return progressDone("join").MatchString(j.stderr.String()) })

	// The source's /metrics: the follower's lease, its lag, and a send.
	metric := func(name string) float64 {
		resp, err := http.Get("http://" + s.addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		t.Fatalf("/metrics has no %s", name)
		return 0
	}
	if n := metric(`kvtool_leases{state="active"}`); n != 1 {
		t.Errorf("active leases %v, want the follower's", n)
	}
	metric("kvtool_replica_lag_entries")
	resp, err := http.Get("http://" + s.addr + "/v1/transfer/stream")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	waitUntil(t, "the stream to be counted", func() bool { return metric(`kvtool_transfers_total{result="ok"}`) == 1 })
	if metric("kvtool_transfer_sent_bytes_total") == 0 {
		t.Error("a stream was sent, but kvtool_transfer_sent_bytes_total is 0")
	}
}
