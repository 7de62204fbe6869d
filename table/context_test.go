package table

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// TestWriterStopsWithContext checks that a writer whose context ends stops
// at its next block, even in the middle of a pacing pause that would last
// hours, publishes nothing and leaves no temporary file.
func TestWriterStopsWithContext(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("snap", 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := NewWriter(fs, "snap/t.delta", WriterOptions{Magic: format.MagicDelta, BlockSize: 1 << 10,
		BytesPerSec: 1, Context: ctx, Codec: format.CodecNone})
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := w.Add([]byte(fmt.Sprintf("k%06d", i)), make([]byte, 100), format.EntryPut); err != nil {
				stopped <- err
				return
			}
		}
	}()
	cancel() // the first block cut pauses for about 1000 s at 1 byte/s
	err = <-stopped
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Add: %v, want context.Canceled", err)
	}
	if _, err := w.Close(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v, want the stop", err)
	}
	w.Cancel()
	if names, _ := fs.List("snap"); len(names) != 0 {
		t.Fatalf("left %v in snap/", names)
	}
}
