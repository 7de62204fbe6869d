package format

import (
	"math"
	"slices"
	"testing"
)

var nameNumbers = []uint64{0, 1, 0xabcdef, 1 << 40, math.MaxInt64, math.MaxUint64}

func TestSegmentAndCheckpointNames(t *testing.T) {
	for _, tt := range []struct {
		kind  string
		name  func(uint64) string
		parse func(string) (uint64, bool)
		ext   string
	}{
		{"segment", SegmentName, ParseSegmentName, ".wal"},
		{"checkpoint", CheckpointName, ParseCheckpointName, ".ckpt"},
	} {
		var names []string
		for _, n := range nameNumbers {
			name := tt.name(n)
			got, ok := tt.parse(name)
			if !ok || got != n {
				t.Errorf("%s: %q parses to %d %v, want %d", tt.kind, name, got, ok, n)
			}
			names = append(names, name)
		}
		if !slices.IsSorted(names) {
			t.Errorf("%s names do not sort in number order: %q", tt.kind, names)
		}
		for _, bad := range []string{
			"", tt.ext, "0" + tt.ext,
			"000000000000001" + tt.ext,   // 15 digits
			"00000000000000001" + tt.ext, // 17 digits
			"000000000000000A" + tt.ext,  // upper case
			"000000000000000g" + tt.ext,
			"-00000000000000a" + tt.ext,
			"+00000000000000a" + tt.ext,
			" 00000000000000a" + tt.ext,
			"000000000000000a",
			"000000000000000a" + tt.ext + ".tmp",
			"000000000000000a" + tt.ext[:len(tt.ext)-1],
			"000000000000000a.delta",
			"x/000000000000000a" + tt.ext,
		} {
			if n, ok := tt.parse(bad); ok {
				t.Errorf("%s: %q parses to %d", tt.kind, bad, n)
			}
		}
	}
	// Each kind rejects the other's names.
	if _, ok := ParseSegmentName(CheckpointName(5)); ok {
		t.Error("a checkpoint name parses as a segment name")
	}
	if _, ok := ParseCheckpointName(SegmentName(5)); ok {
		t.Error("a segment name parses as a checkpoint name")
	}
}

func TestDeltaName(t *testing.T) {
	for _, from := range nameNumbers {
		for _, to := range nameNumbers {
			name := DeltaName(from, to)
			f, tt, ok := ParseDeltaName(name)
			if !ok || f != from || tt != to {
				t.Errorf("%q parses to %d %d %v", name, f, tt, ok)
			}
		}
	}
	good := DeltaName(1, 2)
	for _, bad := range []string{
		"", ".delta", good[:len(good)-1], good + "x",
		"0000000000000001_0000000000000002.delta",
		"0000000000000001-000000000000002.delta",
		"000000000000001-00000000000000002.delta",
		"000000000000000G-0000000000000002.delta",
		"0000000000000001-000000000000000G.delta",
		"0000000000000001-0000000000000002.ckpt",
		"0000000000000001-0000000000000002-0000000000000003.delta",
		CheckpointName(1), SegmentName(1),
	} {
		if f, to, ok := ParseDeltaName(bad); ok {
			t.Errorf("%q parses to %d %d", bad, f, to)
		}
	}
}

func TestQuarantineName(t *testing.T) {
	for _, file := range []string{SegmentName(7), CheckpointName(9), "x", "a.b.c"} {
		for _, off := range []int64{0, 1, 16, math.MaxInt64} {
			name := QuarantineName(file, off)
			f, o, ok := ParseQuarantineName(name)
			if !ok || f != file || o != off || !IsQuarantineName(name) {
				t.Errorf("%q parses to %q %d %v", name, f, o, ok)
			}
		}
	}
	good := QuarantineName("f", 1)
	for _, bad := range []string{
		"", ".quarantine", "f.quarantine", good[:len(good)-1],
		".0000000000000001.quarantine",      // no file
		"f0000000000000001.quarantine",      // no dot
		"f.000000000000001.quarantine",      // 15 digits
		"f.000000000000000G.quarantine",     // not hex
		"f.8000000000000000.quarantine",     // offset past MaxInt64
		"f.0000000000000001.quarantine.x",   // suffix
		"f.0000000000000001.quarantine.tmp", // temp
		SegmentName(1),
	} {
		if f, o, ok := ParseQuarantineName(bad); ok || IsQuarantineName(bad) {
			t.Errorf("%q parses to %q %d", bad, f, o)
		}
	}
}

func TestTempName(t *testing.T) {
	for _, name := range []string{ManifestName, CheckpointName(3), DeltaName(1, 2), "x"} {
		for _, nonce := range nameNumbers {
			tmp := TempName(name, nonce)
			n, nc, ok := ParseTempName(tmp)
			if !ok || n != name || nc != nonce || !IsTempName(tmp) {
				t.Errorf("%q parses to %q %x %v", tmp, n, nc, ok)
			}
			// A temp file is never mistaken for what it will become.
			if _, ok := ParseCheckpointName(tmp); ok {
				t.Errorf("%q parses as a checkpoint", tmp)
			}
			if _, _, ok := ParseDeltaName(tmp); ok {
				t.Errorf("%q parses as a delta", tmp)
			}
		}
	}
	good := TempName("f", 1)
	for _, bad := range []string{
		"", ".tmp-0000000000000001", good[:len(good)-1], good + "0",
		"f.tmp-000000000000000G", "f.tmp_0000000000000001", "f.tmp-x",
		ManifestName, SegmentName(1),
	} {
		if n, nc, ok := ParseTempName(bad); ok || IsTempName(bad) {
			t.Errorf("%q parses to %q %x", bad, n, nc)
		}
	}
}
