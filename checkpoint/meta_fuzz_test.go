package checkpoint

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kvtool/kvtool/format"
)

// FuzzParseExt: the checkpoint header ext decodes without panicking, damage
// is corruption, and whatever decodes re-encodes to the same bytes.
func FuzzParseExt(f *testing.F) {
	f.Add(Meta{Index: 42, Term: 1, Shards: 16}.appendExt(nil))
	f.Add([]byte{})
	f.Add(make([]byte, extSize+1))
	f.Fuzz(func(t *testing.T, ext []byte) {
		m, err := parseExt(ext, "ckpt")
		if err != nil {
			if !errors.Is(err, format.ErrCorruption) {
				t.Fatalf("error is not corruption: %v", err)
			}
			return
		}
		if again := m.appendExt(nil); !bytes.Equal(again, ext) {
			t.Fatalf("re-encoded ext differs:\n%x\n%x", again, ext)
		}
	})
}
