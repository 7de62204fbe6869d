package cluster

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"time"
)

// The peer wire protocol. A connection is opened by the member that sends
// (the dialer) and carries raft messages one way, to the member that
// accepted it. Little-endian; part of the protocol, never changed:
//
//	dialer:   hello  = magic "KVT-PEER" | version u16 | kind u8 | 0 u8 |
//	                   clusterID u64 | from u64 | to u64 | nonceD [32]
//	acceptor: accept = status u8 (0 ok, else refused) then, if ok:
//	                   nonceA [32] | HMAC(secret, "accept" | ids | nonceD | nonceA)
//	                   or, if refused: msgLen u8 | message (unauthenticated, for the log)
//	dialer:   proof  = HMAC(secret, "dial" | ids | nonceA | nonceD)
//	then frames, dialer to acceptor:
//	          len u32 | payload | mac [16]
//	          mac = HMAC-SHA256(session key, seq u64 | len u32 | payload), first 16 bytes
//	          the first payload is the dialer's info: nameLen u8 | name | apiLen u8 | api
//	          (its member name and HTTP API address); every later one a marshalled raft message
//
// A snapshot stream (kind 2) runs the same handshake, then one frame each
// way, unbuffered, before the connection becomes transfer/'s (whose own
// handshake proves the secret again and authenticates every frame):
//
//	dialer:   len u32 | term u64 | mac   the raft term the snapshot is sent in
//	acceptor: len u32 | status u8 | message | mac   (0: go on; else refused, and why)
//	          its mac counts seq from 2^63, so no frame of one direction passes for the other's
//
// ids is clusterID | dialer | acceptor (u64 each); HMACs are HMAC-SHA256
// keyed with the shared secret, and the session key is HMAC(secret,
// "session" | ids | nonceD | nonceA). Each side proves it holds the
// secret over a nonce the other chose, so a recorded handshake cannot be
// replayed; the secret never crosses the wire. Every frame is
// authenticated with the session key and its position (seq counts frames
// from 0), so a frame cannot be forged, altered, replayed or reordered.
// The cluster ID in the hello fences out members of another cluster, and a
// message's From must be the authenticated dialer. With TCPConfig.TLS all
// of this runs inside mutual TLS. Version 2 added the info frame.
const (
	peerMagic    = "KVT-PEER"
	peerVersion  = 2
	kindRaft     = 1 // a raft message stream
	kindSnap     = 2 // a snapshot stream: transfer/ from leader to member
	helloSize    = 8 + 2 + 1 + 1 + 8 + 8 + 8 + nonceSize
	nonceSize    = 32
	macSize      = sha256.Size
	frameMACSize = 16
	// maxRefusal bounds the message of a refused handshake.
	maxRefusal = 255
	// maxInfoField bounds the name and the API address in the info frame.
	maxInfoField = 255
)

// MinSecretSize is the shortest shared secret a TCP transport accepts.
const MinSecretSize = 16

var (
	// ErrHandshake is wrapped by every failed peer handshake: a wrong
	// secret, another cluster, an unknown member, a malformed hello.
	ErrHandshake = errors.New("kvtool/cluster: peer handshake failed")
	// ErrFrame is wrapped when a frame fails its authentication or bounds:
	// the connection is closed and nothing it carried after that is used.
	ErrFrame = errors.New("kvtool/cluster: bad peer frame")
)

type hello struct {
	kind                byte // kindRaft (also when zero) or kindSnap
	clusterID, from, to uint64
	nonce               [nonceSize]byte
}

func (h *hello) encode() []byte {
	kind := h.kind
	if kind == 0 {
		kind = kindRaft
	}
	b := append([]byte(peerMagic), 0, 0, kind, 0)
	binary.LittleEndian.PutUint16(b[8:], peerVersion)
	b = binary.LittleEndian.AppendUint64(b, h.clusterID)
	b = binary.LittleEndian.AppendUint64(b, h.from)
	b = binary.LittleEndian.AppendUint64(b, h.to)
	return append(b, h.nonce[:]...)
}

func decodeHello(b []byte) (hello, error) {
	var h hello
	switch {
	case string(b[:8]) != peerMagic:
		return h, fmt.Errorf("%w: not a kvtool peer (magic %q)", ErrHandshake, b[:8])
	case binary.LittleEndian.Uint16(b[8:]) != peerVersion:
		return h, fmt.Errorf("%w: peer protocol version %d, want %d", ErrHandshake, binary.LittleEndian.Uint16(b[8:]), peerVersion)
	case (b[10] != kindRaft && b[10] != kindSnap) || b[11] != 0:
		return h, fmt.Errorf("%w: unknown stream kind %d", ErrHandshake, b[10])
	}
	h.kind = b[10]
	h.clusterID = binary.LittleEndian.Uint64(b[12:])
	h.from = binary.LittleEndian.Uint64(b[20:])
	h.to = binary.LittleEndian.Uint64(b[28:])
	copy(h.nonce[:], b[36:])
	return h, nil
}

// proofs derives the handshake's MACs and session key.
type proofs struct {
	accept, dial, session []byte
}

func deriveProofs(secret []byte, clusterID, dialer, acceptor uint64, nonceD, nonceA []byte) proofs {
	ids := binary.LittleEndian.AppendUint64(nil, clusterID)
	ids = binary.LittleEndian.AppendUint64(ids, dialer)
	ids = binary.LittleEndian.AppendUint64(ids, acceptor)
	mac := func(label string, parts ...[]byte) []byte {
		h := hmac.New(sha256.New, secret)
		h.Write([]byte("kvtool-peer-" + label))
		h.Write(ids)
		for _, p := range parts {
			h.Write(p)
		}
		return h.Sum(nil)
	}
	return proofs{
		accept:  mac("accept", nonceD, nonceA),
		dial:    mac("dial", nonceA, nonceD),
		session: mac("session", nonceD, nonceA),
	}
}

// dialHandshake runs the dialer's side on conn and returns the session key.
func dialHandshake(conn net.Conn, secret []byte, h hello, deadline time.Time) ([]byte, error) {
	conn.SetDeadline(deadline)
	defer conn.SetDeadline(time.Time{})
	rand.Read(h.nonce[:])
	if _, err := conn.Write(h.encode()); err != nil {
		return nil, fmt.Errorf("%w: send hello: %w", ErrHandshake, err)
	}
	var status [1]byte
	if _, err := io.ReadFull(conn, status[:]); err != nil {
		return nil, fmt.Errorf("%w: no answer to hello (wrong address, or not a kvtool peer listener?): %w", ErrHandshake, err)
	}
	if status[0] != 0 {
		return nil, fmt.Errorf("%w: refused: %s", ErrHandshake, readRefusal(conn))
	}
	var reply [nonceSize + macSize]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		return nil, fmt.Errorf("%w: read accept: %w", ErrHandshake, err)
	}
	p := deriveProofs(secret, h.clusterID, h.from, h.to, h.nonce[:], reply[:nonceSize])
	if !hmac.Equal(reply[nonceSize:], p.accept) {
		return nil, fmt.Errorf("%w: the peer does not hold the shared secret (check KVTOOL_SECRET / --secret-file on both)", ErrHandshake)
	}
	if _, err := conn.Write(p.dial); err != nil {
		return nil, fmt.Errorf("%w: send proof: %w", ErrHandshake, err)
	}
	return p.session, nil
}

func readRefusal(r io.Reader) string {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "(no reason given)"
	}
	msg := make([]byte, n[0])
	io.ReadFull(r, msg)
	return string(msg)
}

// acceptHandshake runs the acceptor's side on conn. check decides whether
// the hello is acceptable (cluster, sender, recipient). It returns the
// dialer's ID and the session key.
func acceptHandshake(conn net.Conn, secret []byte, check func(hello) error, deadline time.Time) (uint64, []byte, error) {
	conn.SetDeadline(deadline)
	defer conn.SetDeadline(time.Time{})
	var buf [helloSize]byte
	if _, err := io.ReadFull(conn, buf[:]); err != nil {
		return 0, nil, fmt.Errorf("%w: read hello: %w", ErrHandshake, err)
	}
	h, err := decodeHello(buf[:])
	if err == nil {
		err = check(h)
	}
	if err != nil {
		refuse(conn, err.Error())
		return 0, nil, err
	}
	var nonceA [nonceSize]byte
	rand.Read(nonceA[:])
	p := deriveProofs(secret, h.clusterID, h.from, h.to, h.nonce[:], nonceA[:])
	if _, err := conn.Write(append(append([]byte{0}, nonceA[:]...), p.accept...)); err != nil {
		return 0, nil, fmt.Errorf("%w: send accept: %w", ErrHandshake, err)
	}
	var proof [macSize]byte
	if _, err := io.ReadFull(conn, proof[:]); err != nil {
		return 0, nil, fmt.Errorf("%w: member %x sent no proof: %w", ErrHandshake, h.from, err)
	}
	if !hmac.Equal(proof[:], p.dial) {
		return 0, nil, fmt.Errorf("%w: member %x at %s does not hold the shared secret", ErrHandshake, h.from, conn.RemoteAddr())
	}
	return h.from, p.session, nil
}

func refuse(w io.Writer, msg string) {
	if len(msg) > maxRefusal {
		msg = msg[:maxRefusal]
	}
	w.Write(append([]byte{1, byte(len(msg))}, msg...))
}

// frameWriter writes authenticated frames to a buffered writer (the
// transport's sender encodes them in its link, tcpsend.go).
type frameWriter struct {
	w   *bufio.Writer
	mac *macer
}

func (fw *frameWriter) write(payload []byte) error {
	_, err := fw.w.Write(appendFrame(nil, fw.mac, payload))
	return err
}

// appendFrame appends one authenticated frame of payload to dst.
func appendFrame(dst []byte, mac *macer, payload []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = append(dst, payload...)
	return append(dst, mac.sum(dst[start:start+4], dst[start+4:])...)
}

// frameReader reads and authenticates frames; maxLen bounds a frame
// before anything is allocated for it.
type frameReader struct {
	r      *bufio.Reader
	mac    *macer
	maxLen int
	buf    []byte
	hdr    [4]byte // here, not on next's stack: read through an interface it would escape
}

// next returns the next frame's payload, valid until the next call.
func (fr *frameReader) next() ([]byte, error) {
	hdr := fr.hdr[:]
	if _, err := io.ReadFull(fr.r, hdr); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(hdr))
	if n > fr.maxLen {
		return nil, fmt.Errorf("%w: frame %d of %d bytes, the limit is %d", ErrFrame, fr.mac.seq, n, fr.maxLen)
	}
	if cap(fr.buf) < n+frameMACSize {
		fr.buf = make([]byte, n+frameMACSize)
	}
	b := fr.buf[:n+frameMACSize]
	if _, err := io.ReadFull(fr.r, b); err != nil {
		return nil, fmt.Errorf("%w: frame %d cut short: %w", ErrFrame, fr.mac.seq, err)
	}
	seq := fr.mac.seq
	if !hmac.Equal(fr.mac.sum(hdr, b[:n]), b[n:]) {
		return nil, fmt.Errorf("%w: frame %d fails its authentication (altered, replayed or reordered)", ErrFrame, seq)
	}
	return b[:n], nil
}

// macer computes frame MACs in sequence.
type macer struct {
	h      hash.Hash
	seq    uint64
	out    [macSize]byte
	seqBuf [8]byte // here, not on sum's stack: passed to h.Write it would escape, an allocation per frame
}

func newMacer(key []byte) *macer { return &macer{h: hmac.New(sha256.New, key)} }

// sum returns the MAC of the next frame and advances the sequence.
func (m *macer) sum(hdr, payload []byte) []byte {
	binary.LittleEndian.PutUint64(m.seqBuf[:], m.seq)
	m.seq++
	m.h.Reset()
	m.h.Write(m.seqBuf[:])
	m.h.Write(hdr)
	m.h.Write(payload)
	return m.h.Sum(m.out[:0])[:frameMACSize]
}

// encodeInfo encodes the dialer's info frame; its fields are at most
// maxInfoField bytes (checked by NewTCPTransport).
func encodeInfo(i PeerInfo) []byte {
	b := append([]byte{byte(len(i.Name))}, i.Name...)
	b = append(b, byte(len(i.APIAddr)))
	return append(b, i.APIAddr...)
}

// decodeInfo decodes an info frame.
func decodeInfo(b []byte) (PeerInfo, error) {
	var i PeerInfo
	var ok bool
	if i.Name, b, ok = cutField(b); ok {
		i.APIAddr, b, ok = cutField(b)
	}
	if !ok || len(b) != 0 {
		return PeerInfo{}, fmt.Errorf("%w: the first frame is not member info", ErrFrame)
	}
	return i, nil
}

func cutField(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}

// reverseSeq starts the MAC sequence of frames the acceptor sends.
const reverseSeq = 1 << 63

// writeFrameDirect writes one authenticated frame straight to w (no
// buffering: the connection goes on carrying another protocol).
func writeFrameDirect(w io.Writer, mac *macer, payload []byte) error {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(payload)))
	b := append(append(hdr[:], payload...), mac.sum(hdr[:], payload)...)
	_, err := w.Write(b)
	return err
}

// readFrameDirect reads one authenticated frame of at most maxLen bytes
// from r without reading past it.
func readFrameDirect(r io.Reader, mac *macer, maxLen int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(hdr[:]))
	if n > maxLen {
		return nil, fmt.Errorf("%w: frame of %d bytes, the limit is %d", ErrFrame, n, maxLen)
	}
	b := make([]byte, n+frameMACSize)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: frame cut short: %w", ErrFrame, err)
	}
	if !hmac.Equal(mac.sum(hdr[:], b[:n]), b[n:]) {
		return nil, fmt.Errorf("%w: frame fails its authentication", ErrFrame)
	}
	return b[:n], nil
}
