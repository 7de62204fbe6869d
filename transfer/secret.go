package transfer

import (
	"crypto/aes"
	"crypto/cipher"
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
	labelToReceiverGCM = "kvtool/transfer v3 frames to the receiver\x00"
	labelToSenderGCM   = "kvtool/transfer v3 frames to the sender\x00"
)

// helloVersion is the duplex protocol a hello announces. Version 2: every
// frame after the hellos carries an authentication tag (frameAuth).
const helloVersion uint16 = 2

// gcmHelloVersion is the version of a sender's hello that takes a
// receiver's offer of AES-GCM frame tags (format.XferFeatureGCMTags); a
// receiver's hello stays version 2, which every sender accepts.
const gcmHelloVersion uint16 = 3

// tagScheme is how a session's frames are tagged: HMAC-SHA256 (version 2)
// or AES-256-GCM (version 3), several times faster per byte on a CPU with
// AES and carry-less multiply instructions, with the same 128-bit tags.
type tagScheme uint8

const (
	tagHMAC tagScheme = iota
	tagGCM
)

// frameKeys derives the keys that authenticate a duplex session's frames,
// one per direction, from the secret and both nonces (HKDF-SHA256): fresh
// for every session, so a frame of one session is worthless in another.
// Each scheme has labels of its own, so the two ends agree on the keys
// only if they agree on the scheme (a hello whose version was altered
// fails at the first frame).
func (s Secret) frameKeys(nr, ns [format.XferNonceSize]byte, scheme tagScheme) (toReceiver, toSender []byte) {
	salt := append(nr[:len(nr):len(nr)], ns[:]...)
	key := func(label string) []byte {
		k, err := hkdf.Key(sha256.New, s.key, salt, label, 32)
		if err != nil {
			panic(err) // only for a length over 255*32 bytes
		}
		return k
	}
	if scheme == tagGCM {
		return key(labelToReceiverGCM), key(labelToSenderGCM)
	}
	return key(labelToReceiver), key(labelToSender)
}

// tagSize is the size of a frame's authentication tag: HMAC-SHA256
// truncated to 128 bits, or a GCM tag.
const tagSize = 16

// frameAuth makes and checks the tags of one direction of a duplex
// session. A frame's tag follows it on the wire (for a chunk, after its
// data) and covers its sequence number in the direction, its header
// without the checksum (length and type), its payload and a chunk's data:
// a frame altered, dropped, replayed or moved is refused. Under tagGCM the
// sequence number is the nonce (never reused: one key per direction and
// session), header and payload the additional data and the data the
// plaintext (format.XferFeatureGCMTags).
type frameAuth struct {
	mac hash.Hash   // tagHMAC
	gcm cipher.AEAD // tagGCM
	seq uint64
	sum [sha256.Size]byte
	// Under tagGCM: the frame begun's additional data and data (data is
	// the caller's slice until finish, or joined when added in parts),
	// and the sealed output whose tail is the tag.
	aad, data, joined, out []byte
	// nonce is the GCM nonce of the frame being finished: a field, as a
	// local it escaped to the heap through the AEAD interface, one
	// allocation per frame (some 20,000 for a join's log tail).
	nonce [12]byte
}

func newFrameAuth(key []byte, scheme tagScheme) *frameAuth {
	if scheme == tagGCM {
		b, err := aes.NewCipher(key)
		if err != nil {
			panic(err) // frameKeys makes 32-byte keys
		}
		g, err := cipher.NewGCM(b)
		if err != nil {
			panic(err)
		}
		return &frameAuth{gcm: g}
	}
	return &frameAuth{mac: hmac.New(sha256.New, key)}
}

// begin starts the tag of the next frame with its header fields after the
// checksum (length and type) and its payload.
func (a *frameAuth) begin(hdr, payload []byte) {
	if a.gcm != nil {
		a.aad, a.data = append(append(a.aad[:0], hdr...), payload...), nil
		return
	}
	a.mac.Reset()
	var seq [8]byte
	binary.LittleEndian.PutUint64(seq[:], a.seq)
	a.mac.Write(seq[:])
	a.mac.Write(hdr)
	a.mac.Write(payload)
}

// add adds a chunk's data to the tag begun. Under tagGCM b must stay
// unchanged until finish.
func (a *frameAuth) add(b []byte) {
	switch {
	case a.gcm == nil:
		a.mac.Write(b)
	case a.data == nil:
		a.data = b
	default:
		a.joined = append(append(a.joined[:0], a.data...), b...)
		a.data = a.joined
	}
}

// finish returns the tag of the frame begun, valid until the next call.
func (a *frameAuth) finish() []byte {
	seq := a.seq
	a.seq++
	if a.gcm != nil {
		binary.LittleEndian.PutUint64(a.nonce[:], seq)
		a.out = a.gcm.Seal(a.out[:0], a.nonce[:], a.data, a.aad)
		a.data = nil
		return a.out[len(a.out)-tagSize:]
	}
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
