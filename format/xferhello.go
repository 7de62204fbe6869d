package format

import (
	"encoding/binary"
	"strings"
)

// The hello's extension: a sender tells a receiver that asks for it the
// address of its HTTP API, so that a read replica can name where writes
// go (the transfer port it follows is not that address). It stays
// compatible both ways:
//
//   - a receiver asks in its hello's proof field, which a receiver's hello
//     does not use (zero before; a sender of any version ignores it):
//     features u32 | zero [28];
//   - a sender appends apiLen u16 | api [apiLen] after the 72 bytes only
//     when asked, so an older receiver, which accepts exactly 72 bytes,
//     never sees it. The sender's proof covers the extension.
//
// These values are part of the wire format and never change.

// XferFeatureSenderAPI in a receiver's hello asks the sender for its API
// address.
const XferFeatureSenderAPI uint32 = 1 << 0

// XferFeatureGCMTags in a receiver's hello offers the frame tags of hello
// version 3: AES-256-GCM under the session's frame keys, the frame's
// sequence number in its direction as the nonce, its header fields and
// payload as the additional data and a chunk's data as the plaintext,
// whose 16-byte tag is the frame's (the ciphertext is not sent). A sender
// that takes the offer answers with a hello of version 3; one that does
// not (or an older one) with version 2, whose tags are HMAC-SHA256.
const XferFeatureGCMTags uint32 = 1 << 1

// MaxXferAPIAddr bounds the API address a hello carries.
const MaxXferAPIAddr = 255

// xferHelloExtMax is the largest hello extension.
const xferHelloExtMax = 2 + MaxXferAPIAddr

// Features are the features a receiver's hello asks for (0 for a
// sender's).
func (h XferHello) Features() uint32 {
	if h.Role != XferReceiver {
		return 0
	}
	return binary.LittleEndian.Uint32(h.Proof[:4])
}

// ReceiverHello is a receiver's hello asking for features.
func ReceiverHello(version uint16, nonce [XferNonceSize]byte, features uint32) XferHello {
	h := XferHello{Version: version, Role: XferReceiver, Nonce: nonce}
	binary.LittleEndian.PutUint32(h.Proof[:4], features)
	return h
}

// XferHelloExt returns the extension bytes of h (nil without one): what
// the sender's proof covers beside the nonces.
func XferHelloExt(h XferHello) []byte { return appendXferHelloExt(nil, h) }

func appendXferHelloExt(dst []byte, h XferHello) []byte {
	if h.API == "" {
		return dst
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(h.API)))
	return append(dst, h.API...)
}

// decodeXferHelloExt decodes the extension ext of a hello (d decoded its
// fixed part) into h.
func decodeXferHelloExt(h *XferHello, ext []byte, d xferDecoder) error {
	if len(ext) == 0 {
		return nil
	}
	const at = xferHelloSize
	switch {
	case h.Role != XferSender:
		return d.corrupt(at, "a receiver's hello has %d bytes of extension", len(ext))
	case len(ext) < 2:
		return d.corrupt(at, "hello extension of %d bytes", len(ext))
	}
	n := int(binary.LittleEndian.Uint16(ext))
	api := string(ext[2:])
	switch {
	case n == 0 || n > MaxXferAPIAddr || n != len(api):
		return d.corrupt(at, "hello API address of length %d, with %d bytes after it (at most %d)", n, len(api), MaxXferAPIAddr)
	case strings.IndexFunc(api, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
		return d.corrupt(at+2, "hello API address is not printable ASCII")
	}
	h.API = api
	return nil
}

// A replica records where its source's API is, so that it names it when
// it refuses a write even before it reconnects: DATA/.transfer/SOURCE, a
// transfer stream header (role XferSourceRecord) and one frame
// (FrameXferSource) whose payload is apiLen u16 | api, as in the hello.
const (
	XferSourceRecord XferRole  = 4  // the header role of DATA/.transfer/SOURCE
	FrameXferSource  FrameType = 42 // the source's API address
	XferSourceName             = "SOURCE"
)

// AppendXferSource appends the payload of a source record naming api.
func AppendXferSource(dst []byte, api string) []byte {
	return appendXferHelloExt(dst, XferHello{API: api})
}

// DecodeXferSource decodes a source record's payload found at offset off
// of path.
func DecodeXferSource(p []byte, path string, off int64) (string, error) {
	h := XferHello{Role: XferSender}
	if err := decodeXferHelloExt(&h, p, xferDecoder{p: p, path: path, off: off - xferHelloSize}); err != nil {
		return "", err
	}
	if h.API == "" {
		return "", Corruptf(path, off+FrameHeaderSize, "source record without an address")
	}
	return h.API, nil
}
