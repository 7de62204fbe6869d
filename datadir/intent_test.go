package datadir_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// truncateIntent is the byte-exact intent file of a cut after index last:
// u64 last | xxh64 of those 8 bytes, little-endian.
func truncateIntent(last uint64) []byte {
	b := binary.LittleEndian.AppendUint64(nil, last)
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

// TestTruncateIntentIsPending checks that a truncate intent a crash left
// in a cluster member's raft directory is reported as a pending cut (its
// index named), by Verify as a note and by Inspect, and a damaged one as a
// fault at its offset; the raft directory itself is not an unknown file.
func TestTruncateIntentIsPending(t *testing.T) {
	dir, _ := smallStore(t)
	raft := filepath.Join(dir, format.RaftDir)
	path := filepath.Join(raft, segment.TruncateMarkerName)
	if err := os.Mkdir(raft, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, truncateIntent(41), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := datadir.Verify(vfs.Default, dir, datadir.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(rep.Notes, "\n")
	if !rep.OK() || !strings.Contains(notes, path+": pending truncation") || !strings.Contains(notes, "after index 41") {
		t.Fatalf("Verify: faults %v, notes:\n%s", rep.Problems(), notes)
	}
	if strings.Contains(notes, "not a kvtool file") {
		t.Fatalf("Verify calls part of the raft directory unknown:\n%s", notes)
	}
	sum, err := datadir.Inspect(vfs.Default, dir, datadir.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Join(sum.Other, "\n")
	if !strings.Contains(other, path+": pending truncation") || strings.Contains(other, "not a kvtool file") {
		t.Fatalf("Inspect: other files:\n%s", other)
	}

	flipByte(t, path, 12) // the checksum
	rep, err = datadir.Verify(vfs.Default, dir, datadir.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps := rep.Problems()
	if len(ps) != 1 || ps[0].Path != path || ps[0].Kind != datadir.Corruption || ps[0].Offset != 8 {
		t.Fatalf("Verify of a damaged intent: %v", ps)
	}
}
