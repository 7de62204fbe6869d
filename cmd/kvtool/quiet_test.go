package main

import (
	"strings"
	"testing"
)

// TestQuietHidesHints checks that --quiet leaves the hint off an error
// report, before or after the command, and keeps the error line.
func TestQuietHidesHints(t *testing.T) {
	data := newTestLog(t)
	segs := segments(t, data)
	flipByte(t, segs[1].Path, segs[1].Size/2)
	_, stderr, code := run(t, "--data", data, "wal", "verify")
	if code != exitDamage || !strings.Contains(stderr, "kvtool: hint: ") {
		t.Fatalf("wal verify of a damaged log: exit %d, stderr %q; want 3 and a hint", code, stderr)
	}
	for _, args := range [][]string{{"--quiet", "wal", "verify"}, {"wal", "verify", "-q"}} {
		stdout, stderr, code := run(t, append([]string{"--data", data}, args...)...)
		mustCode(t, code, exitDamage, stdout, stderr)
		if strings.Contains(stderr, "hint:") || !hasErrorLine(stderr, "wal verify: 1 problem") {
			t.Errorf("%v: stderr %q; want the error line and no hint", args, stderr)
		}
	}
}
