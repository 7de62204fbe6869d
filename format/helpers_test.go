package format

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
)

// update rewrites the byte-exact fixtures in testdata/fixtures and the
// generated fuzz seeds in testdata/fuzz. (datadriven golden files have
// their own flag, -rewrite.)
var update = flag.Bool("update", false, "rewrite testdata/fixtures and generated fuzz seeds")

// hexDump formats b as rows of 16 hex bytes prefixed by their offset: the
// form golden files use, and that parseHex reads back.
func hexDump(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i += 16 {
		fmt.Fprintf(&sb, "%04x:", i)
		for j := i; j < min(i+16, len(b)); j++ {
			fmt.Fprintf(&sb, " %02x", b[j])
		}
		sb.WriteByte('\n')
	}
	if len(b) == 0 {
		sb.WriteString("(empty)\n")
	}
	return sb.String()
}

// parseHex reads bytes written as two-digit hex tokens separated by spaces
// or newlines. A token ending in ':' (a hexDump offset) and anything after
// '#' on a line are ignored; "zeros(N)" stands for N zero bytes and
// "str(TEXT)" for the bytes of TEXT (no spaces).
func parseHex(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, tok := range strings.Fields(line) {
			switch {
			case strings.HasSuffix(tok, ":"):
			case strings.HasPrefix(tok, "zeros(") && strings.HasSuffix(tok, ")"):
				n, err := strconv.Atoi(tok[6 : len(tok)-1])
				if err != nil {
					t.Fatalf("bad token %q", tok)
				}
				out = append(out, make([]byte, n)...)
			case strings.HasPrefix(tok, "str(") && strings.HasSuffix(tok, ")"):
				out = append(out, tok[4:len(tok)-1]...)
			default:
				v, err := strconv.ParseUint(tok, 16, 8)
				if err != nil || len(tok) != 2 {
					t.Fatalf("bad hex token %q", tok)
				}
				out = append(out, byte(v))
			}
		}
	}
	return out
}

// checkDecodeErr fails unless err is one a decoder may return for bad input:
// a *CorruptionError whose offset is in [lo, hi), ErrUnknownVersion (if
// allowed), or io.EOF (if allowed).
func checkDecodeErr(t testing.TB, err error, path string, lo, hi int64, allowVersion, allowEOF bool) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatalf("no error")
	case allowEOF && err == io.EOF:
	case allowVersion && errors.Is(err, ErrUnknownVersion):
		if errors.Is(err, ErrCorruption) {
			t.Fatalf("unknown version reported as corruption: %v", err)
		}
	default:
		ce := AsCorruption(err)
		if ce == nil {
			t.Fatalf("error is not a *CorruptionError: %T %v", err, err)
		}
		if !errors.Is(err, ErrCorruption) {
			t.Fatalf("errors.Is(%v, ErrCorruption) is false", err)
		}
		if ce.Path != path {
			t.Fatalf("corruption names path %q, want %q", ce.Path, path)
		}
		if ce.Offset < lo || ce.Offset >= hi {
			t.Fatalf("corruption offset %d outside [%d, %d): %v", ce.Offset, lo, hi, err)
		}
	}
}

// corruption damages a copy of an encoding at byte i. Tests take the
// corruption as a parameter and run it at every position.
type corruption struct {
	name  string
	apply func(b []byte, i int) []byte
}

var corruptions = []corruption{
	{"xor-ff", func(b []byte, i int) []byte { b[i] ^= 0xff; return b }},
	{"xor-01", func(b []byte, i int) []byte { b[i] ^= 0x01; return b }},
	{"xor-80", func(b []byte, i int) []byte { b[i] ^= 0x80; return b }},
	{"truncate", func(b []byte, i int) []byte { return b[:i] }},
}

// damage returns a damaged copy of b.
func damage(c corruption, b []byte, i int) []byte {
	return c.apply(append([]byte(nil), b...), i)
}
