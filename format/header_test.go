package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/cespare/xxhash/v2"
)

var allMagics = []string{MagicSegment, MagicCheckpoint, MagicDelta, MagicManifest, MagicTransfer, MagicQuarantine}

func TestHeaderRoundTrip(t *testing.T) {
	for _, magic := range allMagics {
		for _, ext := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{0xab}, MaxHeaderExt)} {
			enc := AppendHeader([]byte("prefix"), magic, ext)[len("prefix"):]
			if len(enc) != HeaderSize(len(ext)) {
				t.Fatalf("encoded %d bytes, HeaderSize says %d", len(enc), HeaderSize(len(ext)))
			}
			// Trailing bytes (the file's frames) are left unread.
			r := bytes.NewReader(append(enc, "frames"...))
			h, err := ReadHeader(r, "f", magic)
			if err != nil {
				t.Fatalf("%s ext %d: %v", kindName(magic), len(ext), err)
			}
			if h.Magic != magic || h.Version != Version || !bytes.Equal(h.Ext, ext) {
				t.Fatalf("decoded %+v", h)
			}
			if r.Len() != len("frames") {
				t.Fatalf("ReadHeader consumed %d bytes past the header", len("frames")-r.Len())
			}
			if _, err := ReadHeader(bytes.NewReader(enc), "f", ""); err != nil {
				t.Fatalf("want any: %v", err)
			}
		}
	}
}

func TestAppendHeaderPanicsOnBadArguments(t *testing.T) {
	for name, f := range map[string]func(){
		"short magic": func() { AppendHeader(nil, "KVT", nil) },
		"long ext":    func() { AppendHeader(nil, MagicSegment, make([]byte, MaxHeaderExt+1)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// rawHeader encodes a header field by field, so tests can write values
// AppendHeader never would; the checksum is valid.
func rawHeader(magic string, version, reserved uint16, extLen uint32, ext []byte) []byte {
	b := []byte(magic)
	b = binary.LittleEndian.AppendUint16(b, version)
	b = binary.LittleEndian.AppendUint16(b, reserved)
	b = binary.LittleEndian.AppendUint32(b, extLen)
	b = append(b, ext...)
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

func TestReadHeaderErrors(t *testing.T) {
	good := AppendHeader(nil, MagicCheckpoint, []byte("ext"))
	tests := []struct {
		name    string
		data    []byte
		want    string
		version bool  // want ErrUnknownVersion, not corruption
		off     int64 // offset the corruption names
	}{
		{"empty", nil, "", false, 0},
		{"short fixed part", good[:15], "", false, 0},
		{"short ext", good[:17], "", false, 16},
		{"short checksum", good[:len(good)-1], "", false, 16},
		{"wrong magic", rawHeader("NOTKVT\x00\x00", 1, 0, 0, nil), "", false, 0},
		{"other kind", good, MagicSegment, false, 0},
		{"ext too long", rawHeader(MagicDelta, 1, 0, MaxHeaderExt+1, nil), "", false, 12},
		{"ext length huge", rawHeader(MagicDelta, 1, 0, 0xffffffff, nil), "", false, 12},
		{"bad checksum", append(good[:len(good)-1:len(good)-1], good[len(good)-1]^1), "", false, 19},
		{"reserved set", rawHeader(MagicDelta, 1, 1, 0, nil), "", false, 10},
		{"version 0", rawHeader(MagicDelta, 0, 0, 0, nil), "", true, 0},
		{"version 2", rawHeader(MagicDelta, 2, 0, 0, nil), "", true, 0},
		{"version 2 with reserved", rawHeader(MagicDelta, 2, 7, 0, nil), "", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadHeader(bytes.NewReader(tt.data), "p", tt.want)
			if tt.version {
				if !errors.Is(err, ErrUnknownVersion) || errors.Is(err, ErrCorruption) {
					t.Fatalf("want ErrUnknownVersion and not corruption, got %v", err)
				}
				return
			}
			checkDecodeErr(t, err, "p", tt.off, tt.off+1, false, false)
		})
	}
}

// errReader fails after n bytes with a non-EOF error.
type errReader struct {
	r   io.Reader
	n   int
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, e.err
	}
	p = p[:min(len(p), e.n)]
	n, err := e.r.Read(p)
	e.n -= n
	return n, err
}

func TestReadHeaderPassesIOErrors(t *testing.T) {
	boom := errors.New("boom")
	good := AppendHeader(nil, MagicCheckpoint, []byte("ext"))
	for _, n := range []int{0, 10, 20} {
		_, err := ReadHeader(&errReader{bytes.NewReader(good), n, boom}, "p", "")
		if !errors.Is(err, boom) || errors.Is(err, ErrCorruption) {
			t.Fatalf("after %d bytes: want the I/O error, not corruption: %v", n, err)
		}
	}
}

// TestHeaderCorruption damages every byte of a header in turn: each is
// detected, as corruption inside the header or (for the version field with
// a valid checksum, which a single damage cannot give) an unknown version.
func TestHeaderCorruption(t *testing.T) {
	enc := AppendHeader(nil, MagicSegment, []byte("some ext bytes"))
	for _, c := range corruptions {
		for i := range enc {
			_, err := ReadHeader(bytes.NewReader(damage(c, enc, i)), "h", MagicSegment)
			if err == nil {
				t.Fatalf("%s at %d: not detected", c.name, i)
			}
			checkDecodeErr(t, err, "h", 0, int64(len(enc)), true, false)
		}
	}
}
