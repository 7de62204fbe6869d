package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/datadriven"
)

// The data-driven tests read testdata/header, testdata/frame and
// testdata/block. Regenerate their expected output with
//
//	go test ./format -run TestDataDriven -rewrite

var magicByName = map[string]string{
	"segment": MagicSegment, "checkpoint": MagicCheckpoint, "delta": MagicDelta,
	"manifest": MagicManifest, "transfer": MagicTransfer, "quarantine": MagicQuarantine,
}

// describeErr prints an error with what it is, for golden output.
func describeErr(err error) string {
	switch {
	case err == io.EOF:
		return "EOF\n"
	case errors.Is(err, ErrUnknownVersion):
		return fmt.Sprintf("unknown version: %v\n", err)
	case AsCorruption(err) != nil:
		return fmt.Sprintf("corruption: %v\n", err)
	}
	return fmt.Sprintf("error: %v\n", err)
}

// maybeQuote prints printable text as is and anything else quoted.
func maybeQuote(b []byte) string {
	s := string(b)
	if s != "" && strconv.Quote(s) == `"`+s+`"` && !strings.ContainsAny(s, " #") {
		return s
	}
	return strconv.Quote(s)
}

// unquoteArg reads a word that may be a Go-quoted string.
func unquoteArg(t testing.TB, s string) []byte {
	if strings.HasPrefix(s, `"`) {
		u, err := strconv.Unquote(s)
		if err != nil {
			t.Fatalf("bad quoted string %s", s)
		}
		return []byte(u)
	}
	return []byte(s)
}

func TestDataDrivenHeader(t *testing.T) {
	datadriven.RunTest(t, "testdata/header", func(t *testing.T, td *datadriven.TestData) string {
		switch td.Cmd {
		case "encode":
			var kind string
			td.ScanArgs(t, "kind", &kind)
			return hexDump(AppendHeader(nil, magicByName[kind], []byte(td.Input)))
		case "decode":
			want := ""
			if td.HasArg("want") {
				var kind string
				td.ScanArgs(t, "want", &kind)
				want = magicByName[kind]
			}
			data := parseHex(t, td.Input)
			if td.HasArg("fix-checksum") && len(data) >= 8 {
				// Test the fields behind the checksum: make it match.
				n := len(data) - 8
				binary.LittleEndian.PutUint64(data[n:], xxhash.Sum64(data[:n]))
			}
			h, err := ReadHeader(bytes.NewReader(data), "hdr", want)
			if err != nil {
				return describeErr(err)
			}
			return fmt.Sprintf("%s version=%d ext=%s\n", kindName(h.Magic), h.Version, maybeQuote(h.Ext))
		}
		t.Fatalf("unknown command %q", td.Cmd)
		return ""
	})
}

func TestDataDrivenFrame(t *testing.T) {
	datadriven.RunTest(t, "testdata/frame", func(t *testing.T, td *datadriven.TestData) string {
		switch td.Cmd {
		case "encode":
			var typ int
			td.ScanArgs(t, "type", &typ)
			return hexDump(AppendFrame(nil, FrameType(typ), []byte(td.Input)))
		case "read":
			data := parseHex(t, td.Input)
			if td.HasArg("fix-checksum") && len(data) >= FrameHeaderSize {
				// Test the fields behind the checksum: make the first
				// frame's checksum match (over what there is of it).
				end := min(len(data), FrameHeaderSize+int(binary.LittleEndian.Uint32(data[8:])))
				binary.LittleEndian.PutUint64(data, xxhash.Sum64(data[8:end]))
			}
			limit := int64(len(data))
			if td.HasArg("limit") {
				var s string
				td.ScanArgs(t, "limit", &s)
				limit = -1
				if s != "none" {
					limit, _ = strconv.ParseInt(s, 10, 64)
				}
			}
			fr := NewFrameReader(bytes.NewReader(data), "seg", 0, limit, td.HasArg("stop-at-zero"))
			var out strings.Builder
			for {
				fm, err := fr.Next()
				h, off, p := fm.FrameHeader, fm.Offset, fm.Payload
				if err != nil {
					out.WriteString(describeErr(err))
					return out.String()
				}
				fmt.Fprintf(&out, "frame at %d: type=%d len=%d payload=%s\n", off, h.Type, h.Length, maybeQuote(p))
			}
		}
		t.Fatalf("unknown command %q", td.Cmd)
		return ""
	})
}

func TestDataDrivenBlock(t *testing.T) {
	var last *Block
	datadriven.RunTest(t, "testdata/block", func(t *testing.T, td *datadriven.TestData) string {
		switch td.Cmd {
		case "build":
			codec := CodecNone
			if td.HasArg("codec") {
				var s string
				td.ScanArgs(t, "codec", &s)
				codec = map[string]BlockCodec{"none": CodecNone, "zstd": CodecZstd}[s]
			}
			w := NewBlockWriter(codec)
			var out strings.Builder
			for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
				if f := strings.SplitN(strings.TrimSpace(line), " ", 3); len(f) > 1 {
					if err := addLine(t, w, f); err != nil {
						fmt.Fprintf(&out, "add %s: %v\n", line, err)
					}
				}
			}
			fmt.Fprintf(&out, "entries=%d size=%d first=%s last=%s\n", w.Len(), w.Size(), maybeQuote(w.FirstKey()), maybeQuote(w.LastKey()))
			payload := w.Finish(nil)
			fmt.Fprintf(&out, "codec=%d rawLen=%d count=%d\n", payload[0], binary.LittleEndian.Uint32(payload[1:]), binary.LittleEndian.Uint32(payload[5:]))
			if payload[0] == byte(CodecNone) {
				out.WriteString(hexDump(payload)) // zstd output is the library's, not frozen here
			}
			b, err := DecodeBlock(payload, "blk", 0)
			if err != nil {
				t.Fatalf("built block does not decode: %v", err)
			}
			last = b
			return out.String()
		case "decode":
			b, err := DecodeBlock(parseHex(t, td.Input), "blk", 100)
			if err != nil {
				return describeErr(err)
			}
			last = b
			return describeBlock(b)
		case "seek-ge":
			var key string
			td.ScanArgs(t, "key", &key)
			i := last.SeekGE(unquoteArg(t, key))
			if i == last.Len() {
				return fmt.Sprintf("%d: end\n", i)
			}
			k, v, kind := last.Entry(i)
			return fmt.Sprintf("%d: %s %s %s\n", i, maybeQuote(k), kind, maybeQuote(v))
		}
		t.Fatalf("unknown command %q", td.Cmd)
		return ""
	})
}

// addLine adds "KEY put VALUE" or "KEY delete" (or "KEY kind=N VALUE"); a
// key or value may be Go-quoted.
func addLine(t *testing.T, w *BlockWriter, f []string) error {
	var kind EntryKind
	switch {
	case f[1] == "put":
		kind = EntryPut
	case f[1] == "delete":
		kind = EntryDelete
	case strings.HasPrefix(f[1], "kind="):
		n, _ := strconv.Atoi(f[1][5:])
		kind = EntryKind(n)
	}
	var value []byte
	if len(f) > 2 {
		value = unquoteArg(t, f[2])
	}
	return w.Add(unquoteArg(t, f[0]), value, kind)
}

func describeBlock(b *Block) string {
	var out strings.Builder
	fmt.Fprintf(&out, "codec=%d entries=%d size=%d\n", b.Codec(), b.Len(), b.Size())
	for it := b.Iter(); it.Next(); {
		fmt.Fprintf(&out, "%s %s %s\n", maybeQuote(it.Key()), it.Kind(), maybeQuote(it.Value()))
	}
	return out.String()
}
