package transfer

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/kvtool/kvtool/format"
)

// MinSecretLen is the shortest shared secret NewSecret accepts.
const MinSecretLen = 16

// Secret is the shared secret both ends of a transfer hold. It is never
// sent: each side proves it has it with an HMAC over nonces both sides
// chose. It formats as "[secret]" so it cannot leak into a log or an error.
type Secret struct{ key []byte }

// NewSecret returns the secret b (copied). It must be at least
// MinSecretLen bytes.
func NewSecret(b []byte) (Secret, error) {
	if len(b) < MinSecretLen {
		return Secret{}, ErrNoSecret
	}
	return Secret{key: append([]byte(nil), b...)}, nil
}

// IsZero reports whether s is the zero Secret (none given).
func (s Secret) IsZero() bool { return len(s.key) == 0 }

// String hides the secret.
func (Secret) String() string { return "[secret]" }

// GoString hides the secret from %#v.
func (Secret) GoString() string { return "transfer.Secret{[secret]}" }

// Labels keep every MAC to one purpose, so a proof made for one role or
// step is never accepted for another (no reflection of a proof).
const (
	labelSenderProof   = "kvtool/transfer v1 sender proof\x00"
	labelReceiverProof = "kvtool/transfer v1 receiver proof\x00"
	labelOneWaySession = "kvtool/transfer v1 one-way session\x00"
	labelOneWayStream  = "kvtool/transfer v1 one-way stream\x00"
	labelToReceiver    = "kvtool/transfer v2 frames to the receiver\x00"
	labelToSender      = "kvtool/transfer v2 frames to the sender\x00"
)

// helloVersion is the duplex protocol a hello announces. Version 2: every
// frame after the hellos carries an authentication tag (frameAuth).
const helloVersion uint16 = 2

// frameKeys derives the keys that authenticate a duplex session's frames,
// one per direction, from the secret and both nonces (HKDF-SHA256): fresh
// for every session, so a frame of one session is worthless in another.
func (s Secret) frameKeys(nr, ns [format.XferNonceSize]byte) (toReceiver, toSender []byte) {
	salt := append(nr[:len(nr):len(nr)], ns[:]...)
	key := func(label string) []byte {
		k, err := hkdf.Key(sha256.New, s.key, salt, label, 32)
		if err != nil {
			panic(err) // only for a length over 255*32 bytes
		}
		return k
	}
	return key(labelToReceiver), key(labelToSender)
}

// tagSize is the size of a frame's authentication tag: HMAC-SHA256
// truncated to 128 bits.
const tagSize = 16

// frameAuth makes and checks the tags of one direction of a duplex
// session. A frame's tag follows it on the wire (for a chunk, after its
// data) and covers its sequence number in the direction, its header
// without the checksum (length and type), its payload and a chunk's data:
// a frame altered, dropped, replayed or moved is refused.
type frameAuth struct {
	mac hash.Hash
	seq uint64
	sum [sha256.Size]byte
}

func newFrameAuth(key []byte) *frameAuth { return &frameAuth{mac: hmac.New(sha256.New, key)} }

// begin starts the tag of the next frame with its header fields after the
// checksum (length and type) and its payload.
func (a *frameAuth) begin(hdr, payload []byte) {
	a.mac.Reset()
	var seq [8]byte
	binary.LittleEndian.PutUint64(seq[:], a.seq)
	a.mac.Write(seq[:])
	a.mac.Write(hdr)
	a.mac.Write(payload)
}

// add adds a chunk's data to the tag begun.
func (a *frameAuth) add(b []byte) { a.mac.Write(b) }

// finish returns the tag of the frame begun, valid until the next call.
func (a *frameAuth) finish() []byte {
	a.seq++
	return a.mac.Sum(a.sum[:0])[:tagSize]
}

// mac is the HMAC-SHA256 under s of label and parts.
func (s Secret) mac(label string, parts ...[]byte) [format.XferMACSize]byte {
	m := s.newMAC(label)
	for _, p := range parts {
		m.Write(p)
	}
	var out [format.XferMACSize]byte
	m.Sum(out[:0])
	return out
}

func (s Secret) newMAC(label string) hash.Hash {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(label))
	return m
}

// senderProof proves the secret to a receiver that chose nonce nr, over
// the hello's extension ext too (nil without one: the proof of a sender
// that has none is what it always was).
func (s Secret) senderProof(nr, ns [format.XferNonceSize]byte, ext []byte) [format.XferMACSize]byte {
	return s.mac(labelSenderProof, nr[:], ns[:], ext)
}

// receiverProof proves the secret to a sender that chose nonce ns.
func (s Secret) receiverProof(ns, nr [format.XferNonceSize]byte) [format.XferMACSize]byte {
	return s.mac(labelReceiverProof, ns[:], nr[:])
}

// sessionProof authenticates a one-way stream's session payload (its
// proof field zeroed), so a receiver rejects a wrong secret before it
// writes anything.
func (s Secret) sessionProof(sess format.XferSession) [format.XferMACSize]byte {
	sess.Proof = [format.XferMACSize]byte{}
	return s.mac(labelOneWaySession, format.AppendXferSession(nil, sess))
}

// validProof compares proofs in constant time.
func validProof(got, want [format.XferMACSize]byte) bool { return hmac.Equal(got[:], want[:]) }

// newNonce returns a fresh random nonce.
func newNonce() [format.XferNonceSize]byte {
	var n [format.XferNonceSize]byte
	if _, err := rand.Read(n[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}
