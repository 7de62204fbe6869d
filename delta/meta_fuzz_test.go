package delta

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kvtool/kvtool/format"
)

// FuzzParseExt: the delta header ext (with its length-prefixed parent name)
// decodes without panicking, damage is corruption, and whatever decodes
// is a valid Meta that re-encodes to the same bytes.
func FuzzParseExt(f *testing.F) {
	f.Add(Meta{From: 10, To: 20, Term: 1, Parent: format.CheckpointName(10)}.appendExt(nil))
	f.Add(Meta{From: 0, To: 5, Term: 1}.appendExt(nil))
	f.Add(make([]byte, extFixed))
	f.Fuzz(func(t *testing.T, ext []byte) {
		m, err := parseExt(ext, "delta")
		if err != nil {
			if !errors.Is(err, format.ErrCorruption) {
				t.Fatalf("error is not corruption: %v", err)
			}
			return
		}
		if err := m.check(); err != nil {
			t.Fatalf("decoded an invalid meta: %v", err)
		}
		if again := m.appendExt(nil); !bytes.Equal(again, ext) {
			t.Fatalf("re-encoded ext differs:\n%x\n%x", again, ext)
		}
	})
}
