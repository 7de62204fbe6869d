package main

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0":          0,
		"4096":       4096,
		"512B":       512,
		"512 b":      512,
		"64KiB":      64 << 10,
		"64kib":      64 << 10,
		"4MB":        4_000_000,
		"4mb":        4_000_000,
		"4MiB":       4 << 20,
		"1GiB":       1 << 30,
		"1GB":        1_000_000_000,
		"2TiB":       2 << 40,
		"1.5GiB":     3 << 29,
		"0.5KiB":     512,
		" 8KB ":      8000,
		"1.25MB":     1_250_000,
		"7EiB":       0, // placeholder, not in the table (see bad)
		"8388607TiB": 8388607 << 40,
	}
	delete(good, "7EiB")
	for in, want := range good {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":           "want a number",
		"MiB":        "want a number",
		"-1":         "want a number",
		"4M":         "ambiguous unit",
		"4k":         "ambiguous unit",
		"4XB":        "unknown unit",
		"1.5B":       "not a whole number of bytes",
		"1.2.3KB":    "is not a number",
		"8388608TiB": "too large",
		"1e3":        "unknown unit",
	}
	for in, want := range bad {
		_, err := parseSize(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseSize(%q) error %v, want one containing %q", in, err, want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1000: "1000", 1024: "1KiB", 64 << 20: "64MiB", 3 << 29: "1536MiB", 1 << 40: "1TiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
		if back, err := parseSize(formatSize(n)); err != nil || back != n {
			t.Errorf("parseSize(formatSize(%d)) = %d, %v", n, back, err)
		}
	}
}

// TestSizeFlag runs a throwaway app with a size flag: a good value is read
// back, the default shows in help, and a bad one is a usage error (exit 2).
func TestSizeFlag(t *testing.T) {
	var got int64
	runProbe := func(args ...string) (string, string, int) {
		cmd := &cli.Command{
			Name:  "probe",
			Flags: []cli.Flag{newSizeFlag("segment-size", "rotate at `SIZE`", 64<<20)},
			Action: func(cCtx *cli.Context) error {
				got = sizeFlag(cCtx, "segment-size")
				return nil
			},
		}
		app := newApp(env{})
		app.Commands = []*cli.Command{cmd}
		prepareCommands(app.Commands)
		var out, errw strings.Builder
		app.Writer, app.ErrWriter = &out, &errw
		code := reportError(&errw, app.Run(append([]string{"kvtool", "probe"}, args...)))
		return out.String(), errw.String(), code
	}
	if _, stderr, code := runProbe(); code != 0 || got != 64<<20 {
		t.Errorf("default: code %d, size %d, stderr %q", code, got, stderr)
	}
	if _, stderr, code := runProbe("--segment-size", "4MiB"); code != 0 || got != 4<<20 {
		t.Errorf("4MiB: code %d, size %d, stderr %q", code, got, stderr)
	}
	if stdout, _, _ := runProbe("--help"); !strings.Contains(stdout, `(default: 64MiB)`) {
		t.Errorf("help does not show the default as 64MiB:\n%s", stdout)
	}
	if _, stderr, code := runProbe("--segment-size", "4M"); code != exitUsage || !strings.Contains(stderr, "ambiguous unit") {
		t.Errorf("4M: code %d, stderr %q; want exit 2 naming the ambiguous unit", code, stderr)
	}
}
