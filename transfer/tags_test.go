package transfer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/kvtool/kvtool/format"
)

// recordConn keeps a copy of what is read through it.
type recordConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *recordConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.buf.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// senderHelloVersion decodes the version of the sender's hello from the
// start of what the receiver read.
func senderHelloVersion(t *testing.T, c *recordConn) uint16 {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	r := newFrameReader(bytes.NewReader(c.buf.Bytes()), "sender", false)
	if err := r.header(format.XferSender, format.XferDuplex); err != nil {
		t.Fatal(err)
	}
	f, err := expect(r, format.FrameXferHello, "sender")
	if err != nil {
		t.Fatal(err)
	}
	h, err := format.DecodeXferHello(f.Payload, "sender", f.Offset)
	if err != nil {
		t.Fatal(err)
	}
	return h.Version
}

// TestFrameTagSchemes: a session uses GCM tags (hello version 3) exactly
// when the receiver offers them and the sender takes the offer, and HMAC
// tags (version 2) with an older end on either side; a whole transfer
// works in each case, and a chunk altered on the way (its checksums
// recomputed) is refused under either scheme.
func TestFrameTagSchemes(t *testing.T) {
	for _, c := range []struct {
		senderHMAC, receiverHMAC bool
		want                     uint16
	}{{false, false, gcmHelloVersion}, {true, false, helloVersion}, {false, true, helloVersion}, {true, true, helloVersion}} {
		t.Run(fmt.Sprintf("sender-hmac=%v,receiver-hmac=%v", c.senderHMAC, c.receiverHMAC), func(t *testing.T) {
			src := newMemSource(t, 1000, 1)
			dir := t.TempDir()
			sopts, ropts := smallOpts(dir)
			sopts.hmacTags, ropts.hmacTags = c.senderHMAC, c.receiverHMAC
			var rec *recordConn
			o := transferOnce(t, src, sopts, ropts, nil, func(nc net.Conn) net.Conn { rec = &recordConn{Conn: nc}; return rec })
			if o.sendErr != nil || o.recvErr != nil {
				t.Fatalf("send: %v\nreceive: %v", o.sendErr, o.recvErr)
			}
			if v := senderHelloVersion(t, rec); v != c.want {
				t.Fatalf("sender's hello has version %d, want %d", v, c.want)
			}
			checkInstalled(t, ropts.FS, dir, src)

			dir = t.TempDir()
			sopts, ropts = smallOpts(dir)
			sopts.hmacTags, ropts.hmacTags = c.senderHMAC, c.receiverHMAC
			var m *mitmConn
			edit := once(format.FrameXferChunk, func(p, data []byte) bool {
				if binary.LittleEndian.Uint64(p) != 2 {
					return false
				}
				data[100] ^= 0x40
				return true
			})
			o = transferOnce(t, src, sopts, ropts, nil, func(nc net.Conn) net.Conn { m = newMITM(edit)(nc).(*mitmConn); return m })
			checkTamperRefused(t, src, dir, o, m.edited.Load())
		})
	}
}

// TestFrameTagCovers: under either scheme a frame's tag changes with any
// bit of its header fields, payload or data (a chunk's data is covered by
// the tag, not only by its xxh64 in the payload, which is no MAC) and
// with its place in the direction; data added in parts tags as a whole.
func TestFrameTagCovers(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	hdr, payload, data := []byte{1, 2, 3, 4, 5}, []byte("payload"), bytes.Repeat([]byte("data"), 1000)
	for _, scheme := range []tagScheme{tagHMAC, tagGCM} {
		tag := func(seq int, hdr, payload []byte, data ...[]byte) string {
			a := newFrameAuth(key, scheme)
			for i := 0; ; i++ {
				a.begin(hdr, payload)
				for _, d := range data {
					a.add(d)
				}
				if tg := a.finish(); i == seq {
					return string(tg)
				}
			}
		}
		flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
		base := tag(0, hdr, payload, data)
		for what, other := range map[string]string{
			"header":      tag(0, flip(hdr, 4), payload, data),
			"payload":     tag(0, hdr, flip(payload, 0), data),
			"data":        tag(0, hdr, payload, flip(data, len(data)-1)),
			"no data":     tag(0, hdr, payload),
			"next in seq": tag(1, hdr, payload, data),
		} {
			if other == base {
				t.Errorf("scheme %d: the tag does not change with the %s", scheme, what)
			}
		}
		if got := tag(0, hdr, payload, data[:1000], data[1000:]); got != base {
			t.Errorf("scheme %d: data added in two parts tags differently", scheme)
		}
	}
}
