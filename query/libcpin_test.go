package query

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// modernc.org/sqlite is transpiled C that calls into modernc.org/libc: a
// libc other than the one sqlite's own go.mod names may differ in the
// structures both use (the issue asks to pin it). The go tool says which
// libc this module selects and where sqlite's go.mod is.
func TestLibcPinnedToSqlites(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Path}} {{.Version}} {{.GoMod}}", "modernc.org/sqlite", "modernc.org/libc").Output()
	if err != nil {
		t.Skipf("go list -m: %v (no go tool or module here)", err)
	}
	ver, gomod := map[string]string{}, map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("go list -m printed %q", line)
		}
		ver[f[0]], gomod[f[0]] = f[1], f[2]
	}
	b, err := os.ReadFile(gomod["modernc.org/sqlite"])
	if err != nil {
		t.Skipf("sqlite's go.mod: %v", err)
	}
	want := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "modernc.org/libc" {
			want = f[1]
		} else if len(f) >= 3 && f[0] == "require" && f[1] == "modernc.org/libc" {
			want = f[2]
		}
	}
	if want == "" {
		t.Fatalf("%s names no modernc.org/libc", gomod["modernc.org/sqlite"])
	}
	if got := ver["modernc.org/libc"]; got != want {
		t.Fatalf("this module selects modernc.org/libc %s, but modernc.org/sqlite %s pins %s: set go.mod's libc to %s", got, ver["modernc.org/sqlite"], want, want)
	}
}
