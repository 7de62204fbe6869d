package format

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
)

// Magic numbers name the kind of a file. They are part of the on-disk format
// and never change.
const (
	MagicSegment    = "KVT-WAL\x00" // WAL segment
	MagicCheckpoint = "KVT-CKP\x00" // full snapshot
	MagicDelta      = "KVT-DLT\x00" // incremental snapshot
	MagicManifest   = "KVT-MAN\x00" // data directory manifest
	MagicTransfer   = "KVT-XFR\x00" // snapshot transfer stream
	MagicQuarantine = "KVT-QRN\x00" // bytes cut by a repair
	MagicRaftState  = "KVT-RFT\x00" // a cluster node's raft state (format/raft.go)
)

// Version is the only format version this build writes and reads.
const Version uint16 = 1

// Header sizes.
const (
	headerFixedSize = 16
	// MaxHeaderExt bounds the kind-specific part of a header.
	MaxHeaderExt = 4096
)

// Header is a decoded file header.
type Header struct {
	Magic   string // one of the Magic constants
	Version uint16
	Ext     []byte // kind-specific fields
}

// HeaderSize returns the encoded size of a header with extLen bytes of ext.
func HeaderSize(extLen int) int { return headerFixedSize + extLen + 8 }

// AppendHeader appends the encoding of a header with the given magic and ext
// (written with the current Version) to dst.
func AppendHeader(dst []byte, magic string, ext []byte) []byte {
	if len(magic) != 8 || len(ext) > MaxHeaderExt {
		panic("kvtool/format: bad header arguments") // programming error, never input
	}
	start := len(dst)
	dst = append(dst, magic...)
	dst = binary.LittleEndian.AppendUint16(dst, Version)
	dst = binary.LittleEndian.AppendUint16(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(ext)))
	dst = append(dst, ext...)
	return binary.LittleEndian.AppendUint64(dst, xxhash.Sum64(dst[start:]))
}

// ReadHeader reads and checks a header from r, which holds the file at path
// from offset 0. It wants the magic named by want ("" accepts any known
// magic). Damage is a *CorruptionError; an unknown version wraps
// ErrUnknownVersion.
func ReadHeader(r io.Reader, path, want string) (Header, error) {
	var fixed [headerFixedSize]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Header{}, shortRead(path, 0, "file header", err)
	}
	h := Header{Magic: string(fixed[:8]), Version: binary.LittleEndian.Uint16(fixed[8:])}
	if !knownMagic(h.Magic) {
		return h, Corruptf(path, 0, "not a kvtool file: magic %q", h.Magic)
	}
	if want != "" && h.Magic != want {
		return h, Corruptf(path, 0, "file kind %s, want %s", kindName(h.Magic), kindName(want))
	}
	extLen := binary.LittleEndian.Uint32(fixed[12:])
	if extLen > MaxHeaderExt {
		return h, Corruptf(path, 12, "header extension length %d exceeds %d", extLen, MaxHeaderExt)
	}
	rest := make([]byte, int(extLen)+8)
	if _, err := io.ReadFull(r, rest); err != nil {
		return h, shortRead(path, headerFixedSize, "file header", err)
	}
	sum := xxhash.New()
	sum.Write(fixed[:])
	sum.Write(rest[:extLen])
	if got := binary.LittleEndian.Uint64(rest[extLen:]); got != sum.Sum64() {
		return h, Corruptf(path, int64(headerFixedSize+extLen), "header checksum mismatch")
	}
	if h.Version != Version {
		return h, fmt.Errorf("%s: %w %d (this kvtool reads version %d; use a newer kvtool)",
			path, ErrUnknownVersion, h.Version, Version)
	}
	if binary.LittleEndian.Uint16(fixed[10:]) != 0 {
		return h, Corruptf(path, 10, "reserved header bytes are not zero")
	}
	h.Ext = rest[:extLen]
	return h, nil
}

func knownMagic(m string) bool {
	switch m {
	case MagicSegment, MagicCheckpoint, MagicDelta, MagicManifest, MagicTransfer, MagicQuarantine, MagicRaftState:
		return true
	}
	return false
}

// kindName is the human name of a magic, for messages.
func kindName(magic string) string {
	switch magic {
	case MagicSegment:
		return "WAL segment"
	case MagicCheckpoint:
		return "checkpoint"
	case MagicDelta:
		return "delta"
	case MagicManifest:
		return "manifest"
	case MagicTransfer:
		return "transfer stream"
	case MagicQuarantine:
		return "quarantine"
	case MagicRaftState:
		return "raft state"
	}
	return fmt.Sprintf("unknown (%q)", magic)
}

// shortRead turns an unexpected end of data into corruption and passes other
// I/O errors through with the path.
func shortRead(path string, off int64, what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return Corruptf(path, off, "truncated %s", what)
	}
	return fmt.Errorf("%s: read %s at offset %d: %w", path, what, off, err)
}
