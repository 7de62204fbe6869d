package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/client"
	"github.com/kvtool/kvtool/format"
)

// TestPutValueInput checks the ways put takes a value: an argument, standard
// input with -, and --file; and that the value limit is the same one
// everywhere and is named.
func TestPutValueInput(t *testing.T) {
	big := bytes.Repeat([]byte{0xfe, 'x'}, 100<<10) // 200KiB, binary: over what a shell argument takes
	file := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(file, big, 0o644); err != nil {
		t.Fatal(err)
	}
	tooBig := filepath.Join(t.TempDir(), "too-big")
	if err := os.WriteFile(tooBig, make([]byte, format.MaxValueSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range kvTargetsSmall(t) {
		t.Run(name, func(t *testing.T) {
			a := func(cmd string, args ...string) []string { return kvArgs(target, cmd, args...) }
			kvMust(t, exitOK, "from stdin\n", a("put", "k1", "-")...)
			if out, _ := kvMust(t, exitOK, "", a("get", "k1")...); out != "from stdin\n" {
				t.Errorf("put k1 - stored %q, want the standard input", out)
			}
			kvMust(t, exitOK, string(big), a("put", "k2", "-")...)
			kvMust(t, exitOK, "", a("put", "--file", file, "k3")...)
			for _, k := range []string{"k2", "k3"} {
				if out, _ := kvMust(t, exitOK, "", a("get", k)...); out != string(big) {
					t.Errorf("get %s: %d bytes, want the %d bytes put", k, len(out), len(big))
				}
			}
			for _, c := range []struct {
				stdin string
				args  []string
				want  string
			}{
				{"", a("put", "k"), "no value: give VALUE, - to read it from standard input, or --file FILE"},
				{"", a("put", "--file", file, "k", "v"), "not both"},
				{"", a("put", "--file", tooBig, "k"), "over the limit of 1048576 bytes (1MiB)"},
				{string(make([]byte, format.MaxValueSize+1)), a("put", "k", "-"), "over the limit of 1048576 bytes (1MiB)"},
			} {
				_, stderr := kvMust(t, exitUsage, c.stdin, c.args...)
				if !hasErrorLine(stderr, c.want) {
					t.Errorf("%v: stderr %q, want %q", c.args, stderr, c.want)
				}
			}
		})
	}
	out, _ := kvMust(t, exitOK, "", "put", "--help")
	for _, want := range []string{"1048576 bytes", "4096 bytes", "65536 operations", "--file FILE", "KEY [VALUE | -]"} {
		if !strings.Contains(out, want) {
			t.Errorf("put --help does not mention %q", want)
		}
	}
}

// TestPutLimitOverHTTP checks that the API names the same value limit for a
// body far over it as for one just over it.
func TestPutLimitOverHTTP(t *testing.T) {
	addr := kvTargets(t)["addr"][1]
	for _, n := range []int{format.MaxValueSize + 1, 2 * format.MaxValueSize} {
		req, _ := http.NewRequest(http.MethodPut, "http://"+addr+client.KeyPath("k"), bytes.NewReader(make([]byte, n)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		if !strings.Contains(b.String(), "over the limit of 1048576 bytes") {
			t.Errorf("PUT of %d bytes: %d %s; want the value limit, 1048576 bytes", n, resp.StatusCode, b.String())
		}
	}
}

// TestQuietAndJSONResults checks --quiet (the result alone) and --json of
// the key commands, del of an absent key, and get --json of a key that is
// not UTF-8.
func TestQuietAndJSONResults(t *testing.T) {
	for name, target := range kvTargetsSmall(t) {
		t.Run(name, func(t *testing.T) {
			a := func(cmd string, args ...string) []string { return kvArgs(target, cmd, args...) }
			if out, _ := kvMust(t, exitOK, "", a("put", "--quiet", "k", "v")...); out != "1\n" {
				t.Errorf("put --quiet printed %q, want the index alone", out)
			}
			// --json is the whole result, --quiet or not: the index and the
			// store it went to.
			var res struct {
				Index   uint64 `json:"index"`
				DataDir string `json:"data_dir"`
				Addr    string `json:"addr"`
			}
			if out, _ := kvMust(t, exitOK, "", a("put", "--quiet", "--json", "k", "w")...); json.Unmarshal([]byte(out), &res) != nil || res.Index != 2 || res.DataDir == "" && res.Addr == "" {
				t.Errorf("put --quiet --json printed %q", out)
			}
			if out, _ := kvMust(t, exitOK, "", a("del", "nope")...); out != "absent, nothing changed (applied index 2)\n" {
				t.Errorf("del of an absent key printed %q", out)
			}
			out, _ := kvMust(t, exitOK, "", a("del", "--json", "nope")...)
			var d struct {
				Index   uint64 `json:"index"`
				Deleted *bool  `json:"deleted"`
			}
			mustJSON(t, out, &d)
			if d.Deleted == nil || *d.Deleted || d.Index != 2 {
				t.Errorf("del --json of an absent key: %s", out)
			}
			if out, _ = kvMust(t, exitOK, "", a("del", "k")...); out != "deleted at index 3\n" {
				t.Errorf("del printed %q", out)
			}
			kvMust(t, exitOK, "", a("put", "bin\xff", "v")...)
			out, _ = kvMust(t, exitOK, "", a("get", "--json", "bin\xff")...)
			if want := "{\n  \"key_base64\": \"YmluLw==\",\n  \"value\": \"v\",\n  \"applied_index\": 4\n}\n"; out != strings.Replace(want, "YmluLw==", "Ymlu/w==", 1) {
				t.Errorf("get --json of a binary key:\n%s", out)
			}
		})
	}
}
