package server

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The garbage collector of a serving process. A put allocates the store's
// staging copy of the B-tree path it changes (about half the bytes per
// put under serverbench), so with Go's default GOGC=100 the collector ran
// every few thousand puts and took 5-7% of the server's CPU, and its
// assists landed on the readers too (issue 16's profile). A serving
// process trades memory for it: GOGC=ServeGCPercent, bounded by a soft
// memory limit of ServeMemoryShare of the machine's (or the cgroup's)
// memory, so a large data set makes the collector work harder instead of
// growing the heap to five times its live size.
const (
	ServeGCPercent   = 400
	ServeMemoryShare = 0.5
)

// TuneGC sets the collector for serving as described above, unless the
// operator chose with GOGC or GOMEMLIMIT, or the memory size is unknown
// (the higher percent is only safe under a limit): then it changes nothing
// and returns ok false. It returns the percent and limit it set.
func TuneGC() (percent int, limit int64, ok bool) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return 0, 0, false
	}
	mem := memoryBytes()
	if mem <= 0 {
		return 0, 0, false
	}
	limit = int64(float64(mem) * ServeMemoryShare)
	debug.SetMemoryLimit(limit)
	debug.SetGCPercent(ServeGCPercent)
	return ServeGCPercent, limit, true
}

// memoryBytes is the memory this process may use: the machine's, or its
// cgroup's limit if lower; 0 if unknown.
func memoryBytes() int64 {
	mem := totalMemory()
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (mem <= 0 || n < mem) {
			mem = n
		}
	}
	return mem
}
