package server

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestTuneGC checks that serving raises GOGC under a memory limit, and
// leaves the collector alone when the operator set GOGC or GOMEMLIMIT.
func TestTuneGC(t *testing.T) {
	restore := func() {
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
	}
	t.Cleanup(restore)
	for _, env := range []struct{ name, value string }{{"GOGC", "50"}, {"GOMEMLIMIT", "1GiB"}} {
		restore()
		t.Setenv("GOGC", "")
		t.Setenv("GOMEMLIMIT", "")
		t.Setenv(env.name, env.value)
		if _, _, ok := TuneGC(); ok {
			t.Errorf("with %s=%s TuneGC changed the collector", env.name, env.value)
		}
		if p := debug.SetGCPercent(100); p != 100 {
			t.Errorf("with %s=%s GOGC became %d", env.name, env.value, p)
		}
		if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
			t.Errorf("with %s=%s the memory limit became %d", env.name, env.value, l)
		}
	}
	restore()
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	percent, limit, ok := TuneGC()
	if !ok {
		t.Skip("the memory size is unknown here: TuneGC changes nothing")
	}
	if p := debug.SetGCPercent(100); p != ServeGCPercent || percent != p {
		t.Errorf("GOGC is %d (TuneGC said %d), want %d", p, percent, ServeGCPercent)
	}
	if l := debug.SetMemoryLimit(-1); l != limit || limit <= 0 || limit > memoryBytes() {
		t.Errorf("memory limit %d (TuneGC said %d), want a share of the %d bytes of memory", l, limit, memoryBytes())
	}
}
