// Package sharedtmp gives a test binary temporary directories that outlive
// one test (a benchmark's data set built once for every benchmark, a
// binary built once for every test that starts it) and removes them when
// the binary's tests are done: t.TempDir and b.TempDir end with their test,
// and os.MkdirTemp alone left such directories behind in /tmp on every run
// (half a gigabyte per query benchmark run).
//
// A package that uses Dir calls Main from its TestMain.
package sharedtmp

import (
	"os"
	"sync"
	"testing"
)

var (
	mu   sync.Mutex
	dirs []string
)

// Dir makes a new directory in the system's temporary directory, named
// after prefix, that Main removes once the tests have run.
func Dir(prefix string) (string, error) {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	mu.Lock()
	dirs = append(dirs, d)
	mu.Unlock()
	return d, nil
}

// Main runs the tests, removes every directory Dir made, and exits with
// the tests' code. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if err := Cleanup(); err != nil && code == 0 {
		os.Stderr.WriteString("sharedtmp: " + err.Error() + "\n")
		code = 1
	}
	os.Exit(code)
}

// Cleanup removes every directory Dir made so far and forgets them.
func Cleanup() error {
	mu.Lock()
	ds := dirs
	dirs = nil
	mu.Unlock()
	var first error
	for _, d := range ds {
		if err := os.RemoveAll(d); err != nil && first == nil {
			first = err
		}
	}
	return first
}
