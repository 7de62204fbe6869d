package format

import (
	"bytes"
	"io"
	"testing"
)

func BenchmarkAppendFrame(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 100)
	buf := make([]byte, 0, FrameHeaderSize+len(payload))
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		buf = AppendFrame(buf[:0], FrameWALTxn, payload)
	}
}

func BenchmarkFrameReader(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 100)
	var data []byte
	for range 1000 {
		data = AppendFrame(data, FrameWALTxn, payload)
	}
	b.SetBytes(int64(len(data)))
	r := bytes.NewReader(data)
	for b.Loop() {
		r.Reset(data)
		fr := NewFrameReader(r, "bench", 0, int64(len(data)), false)
		for {
			if _, err := fr.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// blockBenchEntries fills one TargetBlockSize block with 16-byte keys and
// 100-byte values.
func blockBenchEntries() []testEntry {
	all := benchEntries(TargetBlockSize / EntrySize(make([]byte, 16), make([]byte, 100)))
	for _, e := range all {
		if len(e.key) != 16 || len(e.value) != 100 {
			panic("bench entry sizes")
		}
	}
	return all
}

func BenchmarkBlockEncode(b *testing.B) {
	for _, codec := range []BlockCodec{CodecNone, CodecZstd, CodecHuff0} {
		b.Run(codecName(codec), func(b *testing.B) {
			entries := blockBenchEntries()
			w := NewBlockWriter(codec)
			var buf []byte
			for b.Loop() {
				w.Reset()
				for _, e := range entries {
					if err := w.Add(e.key, e.value, e.kind); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(w.Size()))
				buf = w.Finish(buf[:0])
			}
			b.ReportMetric(float64(len(buf)), "payload-bytes")
		})
	}
}

func BenchmarkBlockDecode(b *testing.B) {
	for _, codec := range []BlockCodec{CodecNone, CodecZstd, CodecHuff0} {
		b.Run(codecName(codec), func(b *testing.B) {
			payload := encodeBlock(b, codec, blockBenchEntries())
			var blk Block
			if err := blk.Decode(payload, "bench", 0); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(blk.Size()))
			for b.Loop() {
				if err := blk.Decode(payload, "bench", 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBlockSeekGE(b *testing.B) {
	entries := blockBenchEntries()
	blk, err := DecodeBlock(encodeBlock(b, CodecNone, entries), "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if blk.SeekGE(entries[i%len(entries)].key) != i%len(entries) {
			b.Fatal("wrong entry")
		}
		i += 7
	}
}

func codecName(c BlockCodec) string { return c.String() }
