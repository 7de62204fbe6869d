package checkpoint

import (
	"testing"

	"github.com/kvtool/kvtool/table/tabletest"
)

// FuzzParseExt: the checkpoint header ext decodes without panicking, damage
// is corruption, and whatever decodes re-encodes to the same bytes.
func FuzzParseExt(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, extSize+1))
	tabletest.FuzzExt(f, Kind, Meta{Index: 42, Term: 1, Shards: 16})
}
