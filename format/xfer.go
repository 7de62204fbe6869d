package format

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// Transfer streams (package transfer) are a file header (MagicTransfer,
// ext: role u8 | mode u8 | 6 zero bytes) and format frames, in both
// directions of a connection. This file fixes their payloads. All integers
// are little-endian; every payload but a tail entry's and an error's has a
// fixed size, checked against XferPayloadLimits before it is read. The
// values below are part of the wire format and never change.
//
//	+------------+------+------------------------------------------------------------+
//	| frame      | from | payload                                                    |
//	+------------+------+------------------------------------------------------------+
//	| Hello   37 | both | version u16 | role u8 | 0[5] | nonce[32] | proof[32]        |
//	|            |      | [S, if R asked: apiLen u16 | api] (format/xferhello.go)   |
//	| Request 38 | R    | proof[32] | flags u32 | chunkSize u32 | storeID[16] | epoch  |
//	|            |      | term | snapIndex | snapTerm | snapSum | firstMissing |       |
//	|            |      | walLast | window (u64 each)                                  |
//	| Session 32 | S    | proof[32] | nonce[32] | version u16 | flags u16 | chunkSize  |
//	|            |      | u32 | storeID[16] | epoch | term | snapIndex | snapTerm |     |
//	|            |      | snapSum | totalSize | chunkCount | resumeFrom | tailFrom |   |
//	|            |      | segmentSize (u64 each)                                     |
//	| Chunk   33 | S    | seq u64 | offset u64 | rawLen u32 | wireLen u32 | xxh64 u64 |
//	|            |      | codec u8 | 0[7] ... then wireLen data bytes, outside frame |
//	| Tail    34 | S    | index u64 | term u64 | type u8 | data (one WAL entry)      |
//	| Final   35 | S    | chunksSum | snapIndex | totalSize | chunkCount | tailEnd |  |
//	|            |      | 0 (u64 each) | mac[32]                                     |
//	| Credit  36 | R    | firstMissing | limit | walLast | applied (u64 each)         |
//	| Nack    39 | R    | seq u64 | reason u8 | 0[7]                                  |
//	| Done    40 | R    | applied u64 | 0[8]                                        |
//	| Error   41 | both | code u16 | msgLen u16 | message (at most 1 KiB)            |
//	+------------+------+------------------------------------------------------------+
//
// A chunk's data follows its frame, covered by the header's xxh64 (which
// the frame checksum covers), so each byte is hashed once per side; the
// final frame's chunksSum is the xxh64 of the chunks' xxh64s in order.
//
// On a connection (hello version 2) every frame after the hellos is
// followed by a 16-byte tag, outside the frame (for a chunk, after its
// data): HMAC-SHA256, truncated, under a key for its direction derived
// from the secret and both nonces (HKDF-SHA256), over the frame's number
// in its direction, its length and type, its payload and a chunk's data.
// A sender's hello of version 3 answers a receiver's offer of AES-GCM tags
// (XferFeatureGCMTags): the same 16 bytes, made by AES-256-GCM under keys
// of their own, with the frame's number as the nonce. The checksums catch
// damage, the tags an attacker who recomputes them.

// Frame types of transfer streams, continued (32–36 are in frame.go).
const (
	FrameXferHello   FrameType = 37 // handshake: nonce and proof (both directions)
	FrameXferRequest FrameType = 38 // receiver's proof and resume point
	FrameXferNack    FrameType = 39 // receiver: a chunk failed its checksum, send it again
	FrameXferDone    FrameType = 40 // receiver: installed and cut over
	FrameXferError   FrameType = 41 // either side: giving up, with a code and a message
)

// XferProtocol is the only transfer protocol version this build speaks.
const XferProtocol uint16 = 1

// Transfer limits, checked by encoders' callers and by every decoder.
const (
	MinXferChunk = 4 << 10 // smallest chunk size a session may use
	MaxXferChunk = 8 << 20 // largest chunk size (and largest chunk payload)
	// MaxXferChunkWire bounds the bytes that follow a chunk frame: a zstd
	// chunk that did not shrink is sent uncompressed, so no chunk is larger
	// on the wire than raw.
	MaxXferChunkWire = MaxXferChunk
	// MaxXferTailData bounds the data of one tail entry: what fits in one
	// frame after the entry's header.
	MaxXferTailData = MaxFrameSize - xferTailHeader
	// MaxXferErrorMsg bounds an error frame's message.
	MaxXferErrorMsg = 1024
)

// XferRole says which end of a stream wrote it (the header ext).
type XferRole uint8

// Roles.
const (
	XferSender   XferRole = 1 // snapshot chunks and the WAL tail
	XferReceiver XferRole = 2 // handshake, credits, nacks, done
	XferProgress XferRole = 3 // a receiver's durable progress file
)

// XferMode says how the two ends talk.
type XferMode uint8

// Modes.
const (
	XferDuplex XferMode = 1 // a connection: handshake, credits, resume
	XferOneWay XferMode = 2 // a pipe or a saved file: everything in one direction, MAC-authenticated
)

// XferStreamExt is the header ext of a transfer stream: role u8 | mode u8 |
// reserved 6.
type XferStreamExt struct {
	Role XferRole
	Mode XferMode
}

const xferExtSize = 8

// AppendXferStreamHeader appends the file header that starts a transfer
// stream (or a progress file).
func AppendXferStreamHeader(dst []byte, e XferStreamExt) []byte {
	ext := make([]byte, xferExtSize)
	ext[0], ext[1] = byte(e.Role), byte(e.Mode)
	return AppendHeader(dst, MagicTransfer, ext)
}

// XferStreamHeaderSize is the size of that header.
var XferStreamHeaderSize = HeaderSize(xferExtSize)

// ParseXferStreamExt decodes and checks the ext of a transfer stream's
// header (from ReadHeader) of the stream named path.
func ParseXferStreamExt(ext []byte, path string) (XferStreamExt, error) {
	if len(ext) != xferExtSize {
		return XferStreamExt{}, Corruptf(path, 16, "transfer header ext of %d bytes, want %d", len(ext), xferExtSize)
	}
	e := XferStreamExt{Role: XferRole(ext[0]), Mode: XferMode(ext[1])}
	switch {
	case e.Role < XferSender || e.Role > XferSourceRecord:
		return e, Corruptf(path, 16, "unknown transfer role %d", e.Role)
	case e.Mode < XferDuplex || e.Mode > XferOneWay:
		return e, Corruptf(path, 17, "unknown transfer mode %d", e.Mode)
	case !allZero(ext[2:]):
		return e, Corruptf(path, 18, "reserved transfer header bytes are not zero")
	}
	return e, nil
}

// XferSnapshotID names one snapshot of one store exactly: a receiver
// resumes only into the snapshot with the same ID.
type XferSnapshotID struct {
	Index    uint64 // applied index of the snapshot
	Term     uint64 // term of the entry at Index
	Checksum uint64 // the checkpoint's whole-file checksum (its footer's)
}

// String is the ID as index-term-checksum in 16 hex digits each: the name
// of the receiver's temporary directory for the snapshot.
func (id XferSnapshotID) String() string {
	return fmt.Sprintf("%016x-%016x-%016x", id.Index, id.Term, id.Checksum)
}

// MarshalText encodes the ID as String does.
func (id XferSnapshotID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes an ID written by MarshalText.
func (id *XferSnapshotID) UnmarshalText(b []byte) error {
	v, ok := ParseXferSessionDir(string(b))
	if !ok {
		return fmt.Errorf("snapshot id %q is not index-term-checksum in 16 hex digits each", b)
	}
	*id = v
	return nil
}

// IsZero reports whether id is the zero ID (no snapshot).
func (id XferSnapshotID) IsZero() bool { return id == XferSnapshotID{} }

// Names inside a receiver's data directory. Nothing in a stream names a
// file: the receiver derives every name from these and the snapshot ID.
const (
	TransferDir      = ".transfer"     // DATA/.transfer: partial transfers
	XferPartName     = "snapshot.part" // the snapshot being assembled
	XferProgressName = "PROGRESS"      // header, session, verified chunks, final
	// XferUnverifiedName marks a session directory filled by a one-way
	// stream whose final MAC has not been checked yet: nothing in it may be
	// trusted by a later session.
	XferUnverifiedName = "UNVERIFIED"
	XferSendDir        = "send" // DATA/.transfer/send: an offline sender's checkpoint
)

// ParseXferSessionDir returns the snapshot ID named by a directory name made
// by XferSnapshotID.String.
func ParseXferSessionDir(name string) (XferSnapshotID, bool) {
	parts := strings.Split(name, "-")
	if len(parts) != 3 {
		return XferSnapshotID{}, false
	}
	var v [3]uint64
	for i, p := range parts {
		x, ok := parseHex16(p, len(p), "", "")
		if !ok {
			return XferSnapshotID{}, false
		}
		v[i] = x
	}
	return XferSnapshotID{Index: v[0], Term: v[1], Checksum: v[2]}, true
}

// XferNonceSize and XferMACSize are the sizes of handshake nonces and of
// HMAC-SHA256 proofs and MACs.
const (
	XferNonceSize = 32
	XferMACSize   = 32
)

// XferHello opens a duplex handshake (72 bytes, and an optional extension
// on a sender's; see xferhello.go):
//
//	version u16 | role u8 | reserved 5 | nonce [32] | proof [32] [| apiLen u16 | api]
//
// The receiver's hello has no proof: that field carries its features
// (XferHello.Features); the sender's proves the secret over both nonces
// and its extension.
type XferHello struct {
	Version uint16
	Role    XferRole
	Nonce   [XferNonceSize]byte
	Proof   [XferMACSize]byte
	// API is the sender's HTTP API address (HOST:PORT), sent only to a
	// receiver whose hello asked for it (XferFeatureSenderAPI); "" for none.
	API string
}

const xferHelloSize = 8 + XferNonceSize + XferMACSize

// AppendXferHello appends the payload of h.
func AppendXferHello(dst []byte, h XferHello) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, h.Version)
	dst = append(dst, byte(h.Role), 0, 0, 0, 0, 0)
	dst = append(dst, h.Nonce[:]...)
	dst = append(dst, h.Proof[:]...)
	return appendXferHelloExt(dst, h)
}

// DecodeXferHello decodes a hello payload found at offset off of path.
func DecodeXferHello(p []byte, path string, off int64) (XferHello, error) {
	var h XferHello
	d := xferDecoder{p: p, path: path, off: off}
	if len(p) < xferHelloSize {
		return h, d.size("hello", xferHelloSize)
	}
	d.p = p[:xferHelloSize]
	h.Version, h.Role = d.u16(), XferRole(d.u8())
	d.reserved(5)
	d.bytes(h.Nonce[:])
	d.bytes(h.Proof[:])
	if h.Role != XferSender && h.Role != XferReceiver {
		return h, d.corrupt(2, "hello from unknown role %d", h.Role)
	}
	if d.err != nil {
		return h, d.err
	}
	return h, decodeXferHelloExt(&h, p[xferHelloSize:], d)
}

// XferRequest is the receiver's answer to the sender's hello: its proof and
// what it already holds (120 bytes):
//
//	proof [32] | flags u32 | chunkSize u32 | storeID [16] | epoch u64 |
//	term u64 | snapIndex u64 | snapTerm u64 | snapChecksum u64 |
//	firstMissing u64 | walLast u64 | window u64
//
// StoreID, Epoch and Term are what the receiver has seen (zero: nothing);
// with XferHavePartial, Snapshot, ChunkSize and FirstMissing describe a
// partial snapshot and WALLast the last tail entry it holds; with
// XferHaveStore, WALLast is the last index of its complete store. Window is
// the chunk bytes it lets be in flight.
type XferRequest struct {
	Proof        [XferMACSize]byte
	Flags        uint32
	ChunkSize    uint32
	StoreID      [16]byte
	Epoch        uint64
	Term         uint64
	Snapshot     XferSnapshotID
	FirstMissing uint64
	WALLast      uint64
	Window       uint64
}

// Request flags.
const (
	XferHavePartial  uint32 = 1 << 0 // a partial snapshot to resume
	XferHaveStore    uint32 = 1 << 1 // a complete store to catch up
	XferFollow       uint32 = 1 << 2 // keep streaming the tail after cutover (read replica)
	xferRequestFlags        = XferHavePartial | XferHaveStore | XferFollow
)

const xferRequestSize = XferMACSize + 4 + 4 + 16 + 8*8

// AppendXferRequest appends the payload of r.
func AppendXferRequest(dst []byte, r XferRequest) []byte {
	dst = append(dst, r.Proof[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, r.Flags)
	dst = binary.LittleEndian.AppendUint32(dst, r.ChunkSize)
	dst = append(dst, r.StoreID[:]...)
	return appendU64s(dst, r.Epoch, r.Term, r.Snapshot.Index, r.Snapshot.Term, r.Snapshot.Checksum,
		r.FirstMissing, r.WALLast, r.Window)
}

// DecodeXferRequest decodes a request payload found at offset off of path.
func DecodeXferRequest(p []byte, path string, off int64) (XferRequest, error) {
	var r XferRequest
	d := xferDecoder{p: p, path: path, off: off}
	if err := d.size("request", xferRequestSize); err != nil {
		return r, err
	}
	d.bytes(r.Proof[:])
	r.Flags, r.ChunkSize = d.u32(), d.u32()
	d.bytes(r.StoreID[:])
	r.Epoch, r.Term = d.u64(), d.u64()
	r.Snapshot = XferSnapshotID{Index: d.u64(), Term: d.u64(), Checksum: d.u64()}
	r.FirstMissing, r.WALLast, r.Window = d.u64(), d.u64(), d.u64()
	switch {
	case r.Flags&^xferRequestFlags != 0:
		return r, d.corrupt(32, "unknown request flags %#x", r.Flags)
	case r.Flags&XferHavePartial != 0 && r.Flags&XferHaveStore != 0:
		return r, d.corrupt(32, "request has both a partial snapshot and a complete store")
	case r.Flags&XferHavePartial != 0 && (r.ChunkSize < MinXferChunk || r.ChunkSize > MaxXferChunk):
		return r, d.corrupt(36, "request chunk size %d outside [%d, %d]", r.ChunkSize, MinXferChunk, MaxXferChunk)
	}
	return r, nil
}

// XferSession is the sender's session header (168 bytes):
//
//	proof [32] | nonce [32] | version u16 | flags u16 | chunkSize u32 |
//	storeID [16] | epoch u64 | term u64 | snapIndex u64 | snapTerm u64 |
//	snapChecksum u64 | totalSize u64 | chunkCount u64 | resumeFrom u64 |
//	tailFrom u64 | segmentSize u64
//
// The snapshot is the checkpoint file's bytes, cut into chunkCount chunks of
// chunkSize (the last may be shorter); chunks resumeFrom.. follow. The
// tail starts at entry tailFrom (snapIndex+1, or later on a resume).
// Proof and nonce are used in one-way streams only (zero otherwise): the
// proof is the HMAC of the payload with the proof zeroed.
type XferSession struct {
	Proof       [XferMACSize]byte
	Nonce       [XferNonceSize]byte
	Version     uint16
	Flags       uint16
	ChunkSize   uint32
	StoreID     [16]byte
	Epoch       uint64
	Term        uint64
	Snapshot    XferSnapshotID
	TotalSize   uint64
	ChunkCount  uint64
	ResumeFrom  uint64
	TailFrom    uint64
	SegmentSize uint64
}

// Session flags.
const (
	XferRestarted    uint16 = 1 << 0 // the snapshot the receiver holds part of is gone; this is a new one
	XferTailOnly     uint16 = 1 << 1 // no snapshot: only the tail after TailFrom-1, for a complete store
	xferSessionFlags        = XferRestarted | XferTailOnly
)

const xferSessionSize = XferMACSize + XferNonceSize + 2 + 2 + 4 + 16 + 10*8

// MaxXferSnapshot bounds the snapshot size a session may announce (1 PiB).
const MaxXferSnapshot = 1 << 50

// AppendXferSession appends the payload of s.
func AppendXferSession(dst []byte, s XferSession) []byte {
	dst = append(dst, s.Proof[:]...)
	dst = append(dst, s.Nonce[:]...)
	dst = binary.LittleEndian.AppendUint16(dst, s.Version)
	dst = binary.LittleEndian.AppendUint16(dst, s.Flags)
	dst = binary.LittleEndian.AppendUint32(dst, s.ChunkSize)
	dst = append(dst, s.StoreID[:]...)
	return appendU64s(dst, s.Epoch, s.Term, s.Snapshot.Index, s.Snapshot.Term, s.Snapshot.Checksum,
		s.TotalSize, s.ChunkCount, s.ResumeFrom, s.TailFrom, s.SegmentSize)
}

// DecodeXferSession decodes a session payload found at offset off of path
// and checks that its geometry is consistent.
func DecodeXferSession(p []byte, path string, off int64) (XferSession, error) {
	var s XferSession
	d := xferDecoder{p: p, path: path, off: off}
	if err := d.size("session", xferSessionSize); err != nil {
		return s, err
	}
	d.bytes(s.Proof[:])
	d.bytes(s.Nonce[:])
	s.Version, s.Flags, s.ChunkSize = d.u16(), d.u16(), d.u32()
	d.bytes(s.StoreID[:])
	s.Epoch, s.Term = d.u64(), d.u64()
	s.Snapshot = XferSnapshotID{Index: d.u64(), Term: d.u64(), Checksum: d.u64()}
	s.TotalSize, s.ChunkCount, s.ResumeFrom, s.TailFrom, s.SegmentSize = d.u64(), d.u64(), d.u64(), d.u64(), d.u64()
	return s, s.check(&d)
}

// check validates the session's fields against each other.
func (s *XferSession) check(d *xferDecoder) error {
	tailOnly := s.Flags&XferTailOnly != 0
	switch {
	case s.Flags&^xferSessionFlags != 0:
		return d.corrupt(66, "unknown session flags %#x", s.Flags)
	case tailOnly && (s.ChunkSize != 0 || s.TotalSize != 0 || s.ChunkCount != 0):
		return d.corrupt(68, "tail-only session announces %d chunks of %d bytes", s.ChunkCount, s.ChunkSize)
	case !tailOnly && (s.ChunkSize < MinXferChunk || s.ChunkSize > MaxXferChunk):
		return d.corrupt(68, "chunk size %d outside [%d, %d]", s.ChunkSize, MinXferChunk, MaxXferChunk)
	case s.TotalSize > MaxXferSnapshot:
		return d.corrupt(128, "snapshot size %d exceeds %d", s.TotalSize, uint64(MaxXferSnapshot))
	case !tailOnly && s.ChunkCount != XferChunkCount(s.TotalSize, s.ChunkSize):
		return d.corrupt(136, "%d chunks, but %d bytes in chunks of %d make %d", s.ChunkCount, s.TotalSize, s.ChunkSize, XferChunkCount(s.TotalSize, s.ChunkSize))
	case s.ResumeFrom > s.ChunkCount:
		return d.corrupt(144, "resume from chunk %d of %d", s.ResumeFrom, s.ChunkCount)
	case s.TailFrom <= s.Snapshot.Index:
		return d.corrupt(152, "tail from index %d, at or before the snapshot index %d", s.TailFrom, s.Snapshot.Index)
	}
	return nil
}

// XferChunkCount is the number of chunks of chunkSize that total bytes make.
func XferChunkCount(total uint64, chunkSize uint32) uint64 {
	if chunkSize == 0 {
		return 0
	}
	return (total + uint64(chunkSize) - 1) / uint64(chunkSize)
}

// XferChunk is the header of one chunk (40 bytes); the chunk's WireLen bytes
// of data follow the frame directly, outside it:
//
//	seq u64 | offset u64 | rawLen u32 | wireLen u32 | xxh64 u64 | codec u8 | reserved 7
//
// Offset = seq * chunkSize; RawLen is the snapshot bytes the chunk holds
// and Sum their xxh64 (of the raw bytes, so decompression is checked too);
// Codec is CodecNone (WireLen = RawLen) or CodecZstd. The frame checksum
// covers this header and so Sum: every data byte is hashed once on each
// side. In a receiver's progress file the same frame, without data, records
// a chunk verified and durable.
type XferChunk struct {
	Seq     uint64
	Offset  uint64
	RawLen  uint32
	WireLen uint32
	Sum     uint64
	Codec   BlockCodec
}

// XferChunkSize is the payload size of a chunk frame.
const XferChunkSize = 40

// AppendXferChunk appends the payload of c.
func AppendXferChunk(dst []byte, c XferChunk) []byte {
	dst = appendU64s(dst, c.Seq, c.Offset)
	dst = binary.LittleEndian.AppendUint32(dst, c.RawLen)
	dst = binary.LittleEndian.AppendUint32(dst, c.WireLen)
	dst = binary.LittleEndian.AppendUint64(dst, c.Sum)
	return append(dst, byte(c.Codec), 0, 0, 0, 0, 0, 0, 0)
}

// DecodeXferChunk decodes a chunk header found at offset off of path.
func DecodeXferChunk(p []byte, path string, off int64) (XferChunk, error) {
	var c XferChunk
	d := xferDecoder{p: p, path: path, off: off}
	if err := d.size("chunk", XferChunkSize); err != nil {
		return c, err
	}
	c.Seq, c.Offset = d.u64(), d.u64()
	c.RawLen, c.WireLen, c.Sum, c.Codec = d.u32(), d.u32(), d.u64(), BlockCodec(d.u8())
	d.reserved(7)
	switch {
	case d.err != nil:
		return c, d.err
	case c.RawLen == 0 || c.RawLen > MaxXferChunk:
		return c, d.corrupt(16, "chunk %d holds %d bytes, want 1 to %d", c.Seq, c.RawLen, MaxXferChunk)
	case c.Codec != CodecNone && c.Codec != CodecZstd:
		return c, d.corrupt(32, "chunk %d has unknown codec %d", c.Seq, c.Codec)
	case c.Codec == CodecNone && c.WireLen != c.RawLen:
		return c, d.corrupt(20, "uncompressed chunk %d has %d wire bytes for %d raw", c.Seq, c.WireLen, c.RawLen)
	case c.WireLen == 0 || c.WireLen > MaxXferChunkWire:
		return c, d.corrupt(20, "chunk %d has %d wire bytes, want 1 to %d", c.Seq, c.WireLen, MaxXferChunkWire)
	}
	return c, nil
}

// CompressXferChunk appends raw, zstd-compressed, to dst and returns the
// result and the codec to announce: CodecNone (dst with raw appended) when
// zstd does not make raw smaller.
func CompressXferChunk(dst, raw []byte) ([]byte, BlockCodec) {
	out := zstdEncoder().EncodeAll(raw, dst)
	if len(out)-len(dst) >= len(raw) {
		return append(out[:len(dst)], raw...), CodecNone
	}
	return out, CodecZstd
}

// DecompressXferChunk decodes the wire bytes of a zstd chunk that holds
// rawLen bytes into dst's storage (reallocated if too small). It never
// decodes more than rawLen bytes, whatever the zstd header claims.
func DecompressXferChunk(dst, wire []byte, rawLen int) ([]byte, error) {
	if rawLen > MaxXferChunk {
		return nil, fmt.Errorf("chunk of %d bytes exceeds %d", rawLen, MaxXferChunk)
	}
	if cap(dst) < rawLen {
		dst = make([]byte, 0, rawLen)
	}
	out, err := xferZstdDecoder().DecodeAll(wire, dst[:0:rawLen])
	if err != nil {
		return nil, fmt.Errorf("zstd: %v", err)
	}
	if len(out) != rawLen {
		return nil, fmt.Errorf("zstd chunk decodes to %d bytes, want %d", len(out), rawLen)
	}
	return out, nil
}

// xferZstdDecoder is the zstd decoder for chunks: like the block decoder, but
// bounded by the chunk size rather than the block size.
var xferZstdDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(MaxXferChunk),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		panic("kvtool/format: zstd decoder: " + err.Error()) // constant options
	}
	return d
})

// XferTail is one WAL entry after the snapshot (17 + len(Data) bytes):
//
//	index u64 | term u64 | type u8 | data
type XferTail struct {
	Index uint64
	Term  uint64
	Type  FrameType // FrameWALTxn, FrameWALNoop or FrameWALConf
	Data  []byte    // aliases the decoded payload
}

const xferTailHeader = 17

// AppendXferTail appends the payload of t.
func AppendXferTail(dst []byte, t XferTail) []byte {
	dst = appendU64s(dst, t.Index, t.Term)
	dst = append(dst, byte(t.Type))
	return append(dst, t.Data...)
}

// DecodeXferTail decodes a tail payload found at offset off of path. Data
// aliases p.
func DecodeXferTail(p []byte, path string, off int64) (XferTail, error) {
	var t XferTail
	d := xferDecoder{p: p, path: path, off: off}
	if len(p) < xferTailHeader {
		return t, d.corrupt(0, "tail entry payload of %d bytes, want at least %d", len(p), xferTailHeader)
	}
	if len(p)-xferTailHeader > MaxXferTailData {
		return t, d.corrupt(0, "tail entry data of %d bytes exceeds %d", len(p)-xferTailHeader, MaxXferTailData)
	}
	t.Index, t.Term, t.Type = d.u64(), d.u64(), FrameType(d.u8())
	t.Data = p[xferTailHeader:]
	switch {
	case t.Index == 0:
		return t, d.corrupt(0, "tail entry with index 0")
	case t.Type != FrameWALTxn && t.Type != FrameWALNoop && t.Type != FrameWALConf:
		return t, d.corrupt(16, "tail entry %d has type %d, not a WAL entry type", t.Index, t.Type)
	}
	return t, nil
}

// XferFinal ends the snapshot (80 bytes):
//
//	fileSum u64 | snapIndex u64 | totalSize u64 | chunkCount u64 |
//	tailEnd u64 | reserved u64 | mac [32]
//
// FileSum is XferFileSum of the chunks' checksums: it binds every chunk to
// its place without a second pass over the bytes (the checkpoint's own
// footer checksum covers the bytes themselves). The receiver cuts over
// once it holds every chunk and the tail through TailEnd. In a one-way
// stream MAC is the HMAC of every stream byte before it but the frame
// checksums (zero otherwise).
type XferFinal struct {
	FileSum    uint64
	SnapIndex  uint64
	TotalSize  uint64
	ChunkCount uint64
	TailEnd    uint64
	MAC        [XferMACSize]byte
}

const xferFinalSize = 6*8 + XferMACSize

// XferFinalMACOffset is where the MAC starts in a final payload.
const XferFinalMACOffset = 6 * 8

// AppendXferFinal appends the payload of f.
func AppendXferFinal(dst []byte, f XferFinal) []byte {
	dst = appendU64s(dst, f.FileSum, f.SnapIndex, f.TotalSize, f.ChunkCount, f.TailEnd, 0)
	return append(dst, f.MAC[:]...)
}

// DecodeXferFinal decodes a final payload found at offset off of path.
func DecodeXferFinal(p []byte, path string, off int64) (XferFinal, error) {
	var f XferFinal
	d := xferDecoder{p: p, path: path, off: off}
	if err := d.size("final", xferFinalSize); err != nil {
		return f, err
	}
	f.FileSum, f.SnapIndex, f.TotalSize, f.ChunkCount, f.TailEnd = d.u64(), d.u64(), d.u64(), d.u64(), d.u64()
	d.reserved(8)
	d.bytes(f.MAC[:])
	if d.err == nil && f.TailEnd < f.SnapIndex {
		return f, d.corrupt(32, "tail ends at index %d, before the snapshot index %d", f.TailEnd, f.SnapIndex)
	}
	return f, d.err
}

// XferFileSum accumulates a final frame's FileSum: xxh64 over the chunks'
// xxh64 sums, each as a little-endian u64, in chunk order.
type XferFileSum struct {
	d   *xxhash.Digest
	buf [8]byte
}

// NewXferFileSum starts an empty sum.
func NewXferFileSum() *XferFileSum { return &XferFileSum{d: xxhash.New()} }

// Add adds the next chunk's checksum.
func (f *XferFileSum) Add(chunkSum uint64) {
	binary.LittleEndian.PutUint64(f.buf[:], chunkSum)
	f.d.Write(f.buf[:])
}

// Sum64 returns the sum of the chunks added so far.
func (f *XferFileSum) Sum64() uint64 { return f.d.Sum64() }

// XferCredit is the receiver's durable progress and the sender's
// allowance (32 bytes):
//
//	firstMissing u64 | limit u64 | walLast u64 | applied u64
//
// Every chunk below FirstMissing is verified and durable; the sender may
// send chunks with seq below Limit. WALLast is the last tail entry durable
// at the receiver, Applied its published index once it serves (follow).
type XferCredit struct {
	FirstMissing uint64
	Limit        uint64
	WALLast      uint64
	Applied      uint64
}

const xferCreditSize = 32

// AppendXferCredit appends the payload of c.
func AppendXferCredit(dst []byte, c XferCredit) []byte {
	return appendU64s(dst, c.FirstMissing, c.Limit, c.WALLast, c.Applied)
}

// DecodeXferCredit decodes a credit payload found at offset off of path.
func DecodeXferCredit(p []byte, path string, off int64) (XferCredit, error) {
	var c XferCredit
	d := xferDecoder{p: p, path: path, off: off}
	if err := d.size("credit", xferCreditSize); err != nil {
		return c, err
	}
	c.FirstMissing, c.Limit, c.WALLast, c.Applied = d.u64(), d.u64(), d.u64(), d.u64()
	if c.Limit < c.FirstMissing {
		return c, d.corrupt(8, "credit limit %d below the first missing chunk %d", c.Limit, c.FirstMissing)
	}
	return c, nil
}

// XferNack asks for chunk Seq again (16 bytes): seq u64 | reason u8 | reserved 7.
type XferNack struct {
	Seq    uint64
	Reason uint8
}

// Nack reasons.
const (
	XferNackChecksum uint8 = 1 // the data did not match the chunk's xxh64
	XferNackDecode   uint8 = 2 // the compressed data did not decode
)

const xferNackSize = 16

// AppendXferNack appends the payload of n.
func AppendXferNack(dst []byte, n XferNack) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, n.Seq)
	return append(dst, n.Reason, 0, 0, 0, 0, 0, 0, 0)
}

// DecodeXferNack decodes a nack payload found at offset off of path.
func DecodeXferNack(p []byte, path string, off int64) (XferNack, error) {
	var n XferNack
	d := xferDecoder{p: p, path: path, off: off}
	if err := d.size("nack", xferNackSize); err != nil {
		return n, err
	}
	n.Seq, n.Reason = d.u64(), d.u8()
	d.reserved(7)
	if d.err == nil && n.Reason != XferNackChecksum && n.Reason != XferNackDecode {
		return n, d.corrupt(8, "nack with unknown reason %d", n.Reason)
	}
	return n, d.err
}

// XferDone says the receiver installed the snapshot and cut over at
// Applied (16 bytes): applied u64 | reserved 8.
type XferDone struct {
	Applied uint64
}

const xferDoneSize = 16

// AppendXferDone appends the payload of dn.
func AppendXferDone(dst []byte, dn XferDone) []byte { return appendU64s(dst, dn.Applied, 0) }

// DecodeXferDone decodes a done payload found at offset off of path.
func DecodeXferDone(p []byte, path string, off int64) (XferDone, error) {
	var dn XferDone
	d := xferDecoder{p: p, path: path, off: off}
	if err := d.size("done", xferDoneSize); err != nil {
		return dn, err
	}
	dn.Applied = d.u64()
	d.reserved(8)
	return dn, d.err
}

// XferError ends a session with a reason (4 + len(Message) bytes):
// code u16 | msgLen u16 | message.
type XferError struct {
	Code    XferErrorCode
	Message string
}

// XferErrorCode classifies an XferError.
type XferErrorCode uint16

// Error codes.
const (
	XferErrAuth          XferErrorCode = 1 // the peer's proof is wrong: the secrets differ
	XferErrStoreMismatch XferErrorCode = 2 // the stream is from another store than the receiver holds
	XferErrStaleEpoch    XferErrorCode = 3 // the stream's epoch or term is older than the receiver has seen
	XferErrProtocol      XferErrorCode = 4 // a frame out of place, or a version this side does not speak
	XferErrCorrupt       XferErrorCode = 5 // the stream failed verification
	XferErrTooFarBehind  XferErrorCode = 6 // the source no longer has the log the receiver needs
	XferErrInternal      XferErrorCode = 7 // an I/O or other local failure
	xferMaxErrorCode                   = XferErrInternal
)

// AppendXferError appends the payload of e; a message over MaxXferErrorMsg
// is cut.
func AppendXferError(dst []byte, e XferError) []byte {
	msg := e.Message
	if len(msg) > MaxXferErrorMsg {
		msg = msg[:MaxXferErrorMsg]
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(e.Code))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...)
}

// DecodeXferError decodes an error payload found at offset off of path.
func DecodeXferError(p []byte, path string, off int64) (XferError, error) {
	var e XferError
	d := xferDecoder{p: p, path: path, off: off}
	if len(p) < 4 || len(p) > 4+MaxXferErrorMsg {
		return e, d.corrupt(0, "error payload of %d bytes, want 4 to %d", len(p), 4+MaxXferErrorMsg)
	}
	e.Code = XferErrorCode(d.u16())
	n := int(d.u16())
	switch {
	case e.Code == 0 || e.Code > xferMaxErrorCode:
		return e, d.corrupt(0, "unknown error code %d", e.Code)
	case n != len(p)-4:
		return e, d.corrupt(2, "error message length %d, but %d bytes follow", n, len(p)-4)
	}
	e.Message = string(p[4:])
	return e, nil
}

// XferPayloadLimits returns the smallest and largest payload a frame of
// type t may have in a transfer stream, and false for a type that never
// appears in one. A reader checks a frame's length against it before
// reading the payload.
func XferPayloadLimits(t FrameType) (lo, hi int, ok bool) {
	switch t {
	case FrameXferHello:
		return xferHelloSize, xferHelloSize + xferHelloExtMax, true
	case FrameXferRequest:
		return xferRequestSize, xferRequestSize, true
	case FrameXferSession:
		return xferSessionSize, xferSessionSize, true
	case FrameXferChunk:
		return XferChunkSize, XferChunkSize, true
	case FrameXferTail:
		return xferTailHeader, MaxFrameSize, true
	case FrameXferFinal:
		return xferFinalSize, xferFinalSize, true
	case FrameXferCredit:
		return xferCreditSize, xferCreditSize, true
	case FrameXferNack:
		return xferNackSize, xferNackSize, true
	case FrameXferDone:
		return xferDoneSize, xferDoneSize, true
	case FrameXferError:
		return 4, 4 + MaxXferErrorMsg, true
	case FrameXferSource:
		return 3, xferHelloExtMax, true
	}
	return 0, 0, false
}

func appendU64s(dst []byte, vs ...uint64) []byte {
	for _, v := range vs {
		dst = binary.LittleEndian.AppendUint64(dst, v)
	}
	return dst
}

// xferDecoder reads fixed-width fields from a payload whose size was
// checked; off is the frame's offset in the stream, so errors name it and
// the field's position in the payload.
type xferDecoder struct {
	p    []byte
	pos  int
	path string
	off  int64
	err  error // first reserved-bytes error
}

func (d *xferDecoder) size(what string, want int) error {
	if len(d.p) != want {
		return d.corrupt(0, "%s payload of %d bytes, want %d", what, len(d.p), want)
	}
	return nil
}

// corrupt is a corruption at byte at of the payload.
func (d *xferDecoder) corrupt(at int, format string, args ...any) error {
	return Corruptf(d.path, d.off+FrameHeaderSize+int64(at), format, args...)
}

func (d *xferDecoder) u8() uint8 { v := d.p[d.pos]; d.pos++; return v }

func (d *xferDecoder) u16() uint16 {
	v := binary.LittleEndian.Uint16(d.p[d.pos:])
	d.pos += 2
	return v
}

func (d *xferDecoder) u32() uint32 {
	v := binary.LittleEndian.Uint32(d.p[d.pos:])
	d.pos += 4
	return v
}

func (d *xferDecoder) u64() uint64 {
	v := binary.LittleEndian.Uint64(d.p[d.pos:])
	d.pos += 8
	return v
}

func (d *xferDecoder) bytes(dst []byte) { d.pos += copy(dst, d.p[d.pos:]) }

// reserved skips n bytes that must be zero.
func (d *xferDecoder) reserved(n int) {
	if !allZero(d.p[d.pos:d.pos+n]) && d.err == nil {
		d.err = d.corrupt(d.pos, "reserved bytes are not zero")
	}
	d.pos += n
}
