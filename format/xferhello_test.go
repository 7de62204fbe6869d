package format

import (
	"bytes"
	"errors"
	"testing"
)

// TestXferHelloExtension: a sender's hello carries its API address only
// as an extension after the 72 bytes an older receiver reads, and a
// receiver's hello asks for it in its otherwise unused proof field.
func TestXferHelloExtension(t *testing.T) {
	plain := AppendXferHello(nil, XferHello{Version: 2, Role: XferSender, Nonce: [32]byte{1}, Proof: [32]byte{2}})
	if len(plain) != xferHelloSize {
		t.Fatalf("a hello without an API address is %d bytes, want %d (what older receivers accept)", len(plain), xferHelloSize)
	}
	h := XferHello{Version: 2, Role: XferSender, Nonce: [32]byte{1}, Proof: [32]byte{2}, API: "10.0.0.1:7070"}
	p := AppendXferHello(nil, h)
	if !bytes.Equal(p[:xferHelloSize], plain) || !bytes.Equal(p[xferHelloSize:], XferHelloExt(h)) {
		t.Fatalf("extended hello %x does not start with the plain one %x", p, plain)
	}
	if lo, hi, _ := XferPayloadLimits(FrameXferHello); len(p) < lo || len(p) > hi {
		t.Fatalf("extended hello of %d bytes outside [%d, %d]", len(p), lo, hi)
	}
	got, err := DecodeXferHello(p, "hello", 0)
	if err != nil || got != h {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, h)
	}

	r := ReceiverHello(2, [32]byte{3}, XferFeatureSenderAPI)
	rp := AppendXferHello(nil, r)
	if got, err := DecodeXferHello(rp, "hello", 0); err != nil || got.Features() != XferFeatureSenderAPI || len(rp) != xferHelloSize {
		t.Fatalf("receiver hello: %+v (features %d), %v", got, got.Features(), err)
	}
	if old := (XferHello{Version: 2, Role: XferReceiver}); old.Features() != 0 {
		t.Fatalf("an older receiver's hello asks for %d", old.Features())
	}

	for name, bad := range map[string][]byte{
		"a receiver's extension": AppendXferHello(nil, XferHello{Version: 2, Role: XferReceiver, API: "h:1"}),
		"length beyond the data": append(append([]byte{}, plain...), 9, 0, 'h', ':', '1'),
		"one byte":               append(append([]byte{}, plain...), 1),
		"zero length":            append(append([]byte{}, plain...), 0, 0),
		"not printable":          append(append([]byte{}, plain...), 3, 0, 'h', '\n', '1'),
	} {
		if _, err := DecodeXferHello(bad, "hello", 100); !errors.Is(err, ErrCorruption) {
			t.Errorf("%s: %v, want corruption", name, err)
		}
	}
}
