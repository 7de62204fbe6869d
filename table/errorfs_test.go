package table

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// TestWriteErrors fails each step of writing a table in turn: the error
// names the table's path, and nothing is left under the final name nor as
// a temporary file (except when only the directory sync failed: then the
// rename happened and the outcome is unknown to the caller).
func TestWriteErrors(t *testing.T) {
	entries := genEntries(rand.New(rand.NewPCG(14, 14)), 6000, 16, 200, 0.1) // > 1 MiB: several buffer flushes
	for _, c := range []struct {
		name string
		inj  vfs.Injector
	}{
		{"create", vfs.FailOnce(vfs.OpCreate, "", nil)},
		{"first-write", vfs.FailOnce(vfs.OpWrite, "", nil)},
		{"third-write", vfs.FailAfter(vfs.OpWrite, "", 2, nil)},
		{"sync", vfs.FailOnce(vfs.OpSync, "", nil)},
		{"rename", vfs.FailOnce(vfs.OpRename, "", nil)},
		{"syncdir", vfs.FailOnce(vfs.OpSyncDir, "", nil)},
	} {
		t.Run(c.name, func(t *testing.T) {
			mem := vfs.NewMem()
			if err := mem.MkdirAll("snap", 0o755); err != nil {
				t.Fatal(err)
			}
			err := tryWrite(vfs.NewErrorFS(mem, c.inj), "snap/t", entries)
			if !errors.Is(err, vfs.ErrInjected) || !strings.Contains(err.Error(), "snap/t") || !strings.HasPrefix(err.Error(), "kvtool/table: ") {
				t.Fatalf("error %v: want an injected error naming snap/t", err)
			}
			names, _ := mem.List("snap")
			if c.name == "syncdir" {
				if len(names) != 1 || names[0] != "t" {
					t.Fatalf("after a failed directory sync: %v", names)
				}
				return
			}
			if len(names) != 0 {
				t.Fatalf("failed write left %v", names)
			}
		})
	}
}

// tryWrite writes entries as a table, cancelling on the first error.
func tryWrite(fs vfs.FS, path string, entries []entry) error {
	w, err := NewWriter(fs, path, WriterOptions{Magic: format.MagicCheckpoint, Codec: format.CodecZstd})
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := w.Add(e.key, e.value, e.kind); err != nil {
			w.Cancel()
			return err
		}
	}
	_, err = w.Close()
	return err
}

func TestReadErrors(t *testing.T) {
	mem := vfs.NewMem()
	entries := genEntries(rand.New(rand.NewPCG(15, 15)), 500, 8, 50, 0)
	writeTable(t, mem, "t", entries, WriterOptions{BlockSize: 1 << 10})
	// Open reads the header (two reads), the footer and the index.
	for n := 0; n < 4; n++ {
		fs := vfs.NewErrorFS(mem, vfs.FailAfter(vfs.OpRead, "", n, nil))
		if _, err := Open(fs, "t"); !errors.Is(err, vfs.ErrInjected) || format.AsCorruption(err) != nil {
			t.Fatalf("Open with read %d failing = %v", n+1, err)
		}
	}
	fs := vfs.NewErrorFS(mem, vfs.FailAfter(vfs.OpRead, "", 4, nil))
	r := mustOpen(t, fs, "t")
	if _, _, _, err := r.Get(entries[0].key); !errors.Is(err, vfs.ErrInjected) || !strings.Contains(err.Error(), "t") {
		t.Fatalf("Get with a failing read = %v", err)
	}
	it := r.NewIter(nil, nil)
	if it.Next() || !errors.Is(it.Close(), vfs.ErrInjected) {
		t.Fatalf("iteration with a failing read = %v", it.Err())
	}
	fs = vfs.NewErrorFS(mem, vfs.FailAfter(vfs.OpRead, "", 4, nil)) // the scan after header, footer, index
	if _, err := Verify(fs, "t", VerifyOptions{}); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Verify with a failing read = %v", err)
	}
}
