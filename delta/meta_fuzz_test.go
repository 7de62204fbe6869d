package delta

import (
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/table/tabletest"
)

// FuzzParseExt: the delta header ext (with its length-prefixed parent name)
// decodes without panicking, damage is corruption, and whatever decodes
// is a valid Meta that re-encodes to the same bytes.
func FuzzParseExt(f *testing.F) {
	f.Add(make([]byte, extFixed))
	tabletest.FuzzExt(f, Kind, Meta{From: 10, To: 20, Term: 1, Parent: format.CheckpointName(10)}, Meta{From: 0, To: 5, Term: 1})
}
