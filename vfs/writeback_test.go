package vfs

import (
	"path/filepath"
	"testing"
)

// TestOSWriteback checks that the OS file starts and waits for write-back
// of a range it wrote (sync_file_range), which format.AtomicFile relies on
// to spread a large file's flush.
func TestOSWriteback(t *testing.T) {
	f, err := Default.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ws, ok := f.(WritebackStarter)
	if !ok {
		t.Fatal("the OS file does not implement WritebackStarter")
	}
	if _, err := f.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := ws.StartWriteback(0, 1<<20, false); err != nil {
		t.Fatal(err)
	}
	if err := ws.StartWriteback(0, 1<<20, true); err != nil {
		t.Fatal(err)
	}
}
