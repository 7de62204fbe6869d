package sharedtmp

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCleanupRemoves: a directory from Dir, with files in it, is gone after
// Cleanup, and a second Cleanup has nothing left to do.
func TestCleanupRemoves(t *testing.T) {
	d, err := Dir("kvtool-sharedtmp-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d); !os.IsNotExist(err) {
		t.Fatalf("%s still there after Cleanup (stat: %v)", d, err)
	}
	if err := Cleanup(); err != nil {
		t.Fatal(err)
	}
}
