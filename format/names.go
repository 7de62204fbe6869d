package format

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The layout of a data directory. These names are part of the format.
const (
	WALDir       = "wal"      // WAL segments and their quarantine files
	SnapDir      = "snap"     // checkpoints and deltas
	ManifestName = "MANIFEST" // the current manifest
	LockName     = "LOCK"     // held by the process that owns the directory
	RaftDir      = "raft"     // a cluster member's raft log (segments) and state
)

const (
	segmentExt    = ".wal"
	checkpointExt = ".ckpt"
	deltaExt      = ".delta"
	quarantineExt = ".quarantine"
	tempMarker    = ".tmp-"
)

// SegmentName is the file name of the WAL segment whose first index is
// first: 16 hex digits, so that names sort in log order.
func SegmentName(first uint64) string { return fmt.Sprintf("%016x%s", first, segmentExt) }

// ParseSegmentName returns the first index named by a SegmentName.
func ParseSegmentName(name string) (first uint64, ok bool) {
	return parseHex16(strings.TrimSuffix(name, segmentExt), len(name)-len(segmentExt), name, segmentExt)
}

// CheckpointName is the file name of a checkpoint at applied index idx.
func CheckpointName(idx uint64) string { return fmt.Sprintf("%016x%s", idx, checkpointExt) }

// ParseCheckpointName returns the applied index named by a CheckpointName.
func ParseCheckpointName(name string) (idx uint64, ok bool) {
	return parseHex16(strings.TrimSuffix(name, checkpointExt), len(name)-len(checkpointExt), name, checkpointExt)
}

// DeltaName is the file name of a delta covering indexes (from, to].
func DeltaName(from, to uint64) string { return fmt.Sprintf("%016x-%016x%s", from, to, deltaExt) }

// ParseDeltaName returns the index range named by a DeltaName.
func ParseDeltaName(name string) (from, to uint64, ok bool) {
	if !strings.HasSuffix(name, deltaExt) || len(name) != 33+len(deltaExt) || name[16] != '-' {
		return 0, 0, false
	}
	from, ok1 := parseHex16(name[:16], 16, "", "")
	to, ok2 := parseHex16(name[17:33], 16, "", "")
	return from, to, ok1 && ok2
}

// QuarantineName is the name of the file that keeps the bytes a repair cut
// from file at offset off.
func QuarantineName(file string, off int64) string {
	return fmt.Sprintf("%s.%016x%s", file, off, quarantineExt)
}

// ParseQuarantineName returns the file and offset named by a QuarantineName.
func ParseQuarantineName(name string) (file string, off int64, ok bool) {
	rest, found := strings.CutSuffix(name, quarantineExt)
	if !found || len(rest) < 18 || rest[len(rest)-17] != '.' {
		return "", 0, false
	}
	v, ok := parseHex16(rest[len(rest)-16:], 16, "", "")
	if !ok || v > math.MaxInt64 {
		return "", 0, false
	}
	return rest[:len(rest)-17], int64(v), true
}

// IsQuarantineName reports whether name is a QuarantineName.
func IsQuarantineName(name string) bool {
	_, _, ok := ParseQuarantineName(name)
	return ok
}

// TempName is the name a file is written under before it is published as
// name. Files with this marker are never trusted and may be removed.
func TempName(name string, nonce uint64) string {
	return fmt.Sprintf("%s%s%016x", name, tempMarker, nonce)
}

// ParseTempName returns the final name and nonce named by a TempName.
func ParseTempName(tmp string) (name string, nonce uint64, ok bool) {
	i := len(tmp) - 16 - len(tempMarker)
	if i < 1 || tmp[i:i+len(tempMarker)] != tempMarker {
		return "", 0, false
	}
	nonce, ok = parseHex16(tmp[i+len(tempMarker):], 16, "", "")
	if !ok {
		return "", 0, false
	}
	return tmp[:i], nonce, true
}

// IsTempName reports whether name is a TempName.
func IsTempName(name string) bool {
	_, _, ok := ParseTempName(name)
	return ok
}

func parseHex16(digits string, n int, name, ext string) (uint64, bool) {
	if n != 16 || len(digits) != 16 || (ext != "" && !strings.HasSuffix(name, ext)) {
		return 0, false
	}
	for _, c := range digits {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(digits, 16, 64)
	return v, err == nil
}
