package delta

import (
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// Reader reads a delta: its entries are a table's, puts and tombstones, so
// it is the table reader of the delta kind. Get finds a key's entry: a put
// with its value at To, a tombstone if the delta deletes it, or nothing if
// the key did not change in the delta's range. ForEach calls a function
// for every entry in key order; replay applies a chain by calling it on
// each delta in order.
type Reader = table.KindReader[Meta, Info]

// Open opens the delta at path, reading its header, footer and index, and
// checks that they agree (and with the file name).
func Open(fs vfs.FS, path string) (*Reader, error) { return Kind.Open(fs, path) }

// Verify reads every byte of the delta at path and reports every problem
// it finds (see table.Verify), including header, footer and file name
// disagreeing. The error is only for what stops verification.
func Verify(fs vfs.FS, path string, opts table.VerifyOptions) (*table.Report, error) {
	return Kind.Verify(fs, path, opts)
}

// ReadInfo describes the delta at path from its header and footer only.
func ReadInfo(fs vfs.FS, path string) (Info, error) { return Kind.ReadInfo(fs, path) }

// List describes the deltas in dir in name order (by from index, then to
// index), from their headers and footers. Temporary and other files are
// skipped; a delta that cannot be read is listed with Err set.
func List(fs vfs.FS, dir string) ([]Info, error) { return Kind.List(fs, dir) }
