package transfer

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// update rewrites the generated fuzz seeds in testdata/fuzz.
var update = flag.Bool("update", false, "rewrite the generated fuzz seed corpora in testdata/fuzz")

// Fuzz targets for every decoder of this package: a saved stream, the
// frames of either direction, and a receiver's progress file. Each checks:
// no panic, bounded allocation (lengths are checked before reading), and
// errors that are corruption inside the input, a protocol violation, or
// the end of the stream.

func FuzzVerifyStream(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := VerifyStream(bytes.NewReader(data), "fz", VerifyOptions{Secret: testSecret})
		if err != nil {
			t.Fatalf("verify of an in-memory stream failed: %v", err)
		}
		for _, p := range rep.Problems {
			if p.Path != "fz" || p.Offset < 0 || p.Offset > int64(len(data)) {
				t.Fatalf("problem outside the stream: %v", p)
			}
		}
		if rep.OK() && (!rep.Final || !rep.MACChecked) {
			t.Fatalf("accepted a stream without a checked final frame: %+v", rep)
		}
	})
}

func FuzzFrames(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, receiverSide bool) {
		role := format.XferSender
		if receiverSide {
			role = format.XferReceiver
		}
		fr := newFrameReader(bytes.NewReader(data), "fz", false)
		err := fr.header(role, format.XferDuplex)
		for err == nil {
			var f format.Frame
			f, err = fr.next()
			if err == nil {
				err = decodeAny(f.Type, f.Offset, f.Payload, fr)
			}
		}
		switch ce := format.AsCorruption(err); {
		case err == io.EOF, errors.Is(err, ErrProtocol), errors.Is(err, format.ErrUnknownVersion):
		case ce == nil:
			t.Fatalf("error is not corruption: %v", err)
		case ce.Offset < 0 || ce.Offset > int64(len(data)):
			t.Fatalf("corruption outside the input: %v", err)
		}
	})
}

// decodeAny decodes a frame as a receiver or sender would.
func decodeAny(t format.FrameType, off int64, p []byte, fr *frameReader) error {
	var err error
	switch t {
	case format.FrameXferChunk:
		var c format.XferChunk
		if c, err = format.DecodeXferChunk(p, "fz", off); err == nil {
			_, err = fr.chunkData(int(c.WireLen))
		}
	case format.FrameXferHello:
		_, err = format.DecodeXferHello(p, "fz", off)
	case format.FrameXferRequest:
		_, err = format.DecodeXferRequest(p, "fz", off)
	case format.FrameXferSession:
		_, err = format.DecodeXferSession(p, "fz", off)
	case format.FrameXferTail:
		_, err = format.DecodeXferTail(p, "fz", off)
	case format.FrameXferFinal:
		_, err = format.DecodeXferFinal(p, "fz", off)
	case format.FrameXferCredit:
		_, err = format.DecodeXferCredit(p, "fz", off)
	case format.FrameXferNack:
		_, err = format.DecodeXferNack(p, "fz", off)
	case format.FrameXferDone:
		_, err = format.DecodeXferDone(p, "fz", off)
	case format.FrameXferError:
		err = peerError("fz", off, p)
		var pe *PeerError
		if errors.As(err, &pe) {
			err = nil
		}
	}
	return err
}

func FuzzProgress(f *testing.F) {
	f.Fuzz(func(t *testing.T, progress, part []byte) {
		fs := vfs.NewMem()
		id := format.XferSnapshotID{Index: 1, Term: 1, Checksum: 1}
		sdir := filepath.Join("/d", format.TransferDir, id.String())
		if err := fs.MkdirAll(sdir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeMem(t, fs, filepath.Join(sdir, format.XferProgressName), progress)
		writeMem(t, fs, filepath.Join(sdir, format.XferPartName), part)
		p, err := findPartial(fs, "/d")
		if err != nil || p == nil {
			return
		}
		defer p.close()
		if p.firstMissing > p.sess.ChunkCount {
			t.Fatalf("%d chunks, first missing %d", p.sess.ChunkCount, p.firstMissing)
		}
	})
}

func writeMem(t *testing.T, fs vfs.FS, path string, b []byte) {
	f, err := fs.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b)
	f.Close()
}

// TestFuzzSeeds writes the generated seed corpora with -update; without it,
// it checks each target has seeds.
func TestFuzzSeeds(t *testing.T) {
	corpora := map[string][][]any{
		"FuzzVerifyStream": streamSeeds(t),
		"FuzzFrames":       frameSeeds(t),
		"FuzzProgress":     progressSeeds(t),
	}
	for name, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", name)
		if !*update {
			if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
				t.Errorf("%s has no seed corpus (%v); run with -update", name, err)
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, args := range seeds {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), corpusFile(args...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// corpusFile encodes fuzz arguments in the "go test fuzz v1" format.
func corpusFile(args ...any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case bool:
			fmt.Fprintf(&b, "bool(%v)\n", v)
		}
	}
	return b.Bytes()
}

func seedStream(t *testing.T) []byte {
	src := newMemSource(t, 30, 1)
	src.append("a", []byte("b"))
	var buf bytes.Buffer
	if _, err := WriteStream(context.Background(), &buf, src, SendOptions{Secret: testSecret, ChunkSize: format.MinXferChunk}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func streamSeeds(t *testing.T) [][]any {
	s := seedStream(t)
	flip := func(i int) []byte { b := bytes.Clone(s); b[i%len(b)] ^= 1; return b }
	return [][]any{{s}, {s[:len(s)/2]}, {flip(50)}, {flip(400)}, {flip(len(s) - 5)}, {append(bytes.Clone(s), 9)}, {[]byte{}}}
}

func frameSeeds(t *testing.T) [][]any {
	s := seedStream(t)
	// A receiver's side: header, hello, request, credit, nack, done, error.
	r := format.AppendXferStreamHeader(nil, format.XferStreamExt{Role: format.XferReceiver, Mode: format.XferDuplex})
	r = format.AppendFrame(r, format.FrameXferHello, format.AppendXferHello(nil, format.XferHello{Version: 1, Role: format.XferReceiver}))
	r = format.AppendFrame(r, format.FrameXferRequest, format.AppendXferRequest(nil, format.XferRequest{Window: 1 << 20}))
	r = format.AppendFrame(r, format.FrameXferCredit, format.AppendXferCredit(nil, format.XferCredit{Limit: 4}))
	r = format.AppendFrame(r, format.FrameXferNack, format.AppendXferNack(nil, format.XferNack{Seq: 1, Reason: 1}))
	r = format.AppendFrame(r, format.FrameXferDone, format.AppendXferDone(nil, format.XferDone{Applied: 9}))
	r = format.AppendFrame(r, format.FrameXferError, format.AppendXferError(nil, format.XferError{Code: 1, Message: "no"}))
	duplexSender := bytes.Clone(s)
	duplexSender[17] = byte(format.XferDuplex)
	return [][]any{{r, true}, {r[:len(r)-7], true}, {s, false}, {duplexSender, false}, {r, false}}
}

func progressSeeds(t *testing.T) [][]any {
	sess := format.XferSession{Version: 1, ChunkSize: format.MinXferChunk, TotalSize: 3 * format.MinXferChunk, ChunkCount: 3,
		Snapshot: format.XferSnapshotID{Index: 1, Term: 1, Checksum: 1}, TailFrom: 2}
	part := bytes.Repeat([]byte{7}, 3*format.MinXferChunk)
	b := format.AppendXferStreamHeader(nil, format.XferStreamExt{Role: format.XferProgress, Mode: format.XferDuplex})
	b = format.AppendFrame(b, format.FrameXferSession, format.AppendXferSession(nil, sess))
	for seq := uint64(0); seq < 2; seq++ {
		c := format.XferChunk{Seq: seq, Offset: seq * format.MinXferChunk, RawLen: format.MinXferChunk, WireLen: format.MinXferChunk,
			Sum: xxh(part[:format.MinXferChunk])}
		b = format.AppendFrame(b, format.FrameXferChunk, format.AppendXferChunk(nil, c))
	}
	return [][]any{{b, part}, {b[:len(b)-3], part}, {b, part[:100]}, {b[:40], []byte{}}}
}
