package checkpoint

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/huff0"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/kvtool/kvtool/format"
)

// BenchmarkBlockCodecs compresses the blocks of two states with each
// candidate codec, one block at a time on one goroutine as the table
// writer does, and reports the ratio (compressed/raw) and the speed in raw
// MB per second of CPU time (cpu-MB/s: on a shared machine wall time says
// more about the neighbours). The states: "text", the checkpoint
// benchmark's (keys key:%012d, values of 36 letters and digits), and
// "binary", the store open benchmark's (16-byte random binary keys,
// values of 26 letters), whose sorted blocks zstd's fastest level stores
// raw.
func BenchmarkBlockCodecs(b *testing.B) {
	for _, st := range []string{"text", "binary"} {
		blocks, raw := codecBenchBlocks(st)
		for _, c := range codecCandidates() {
			b.Run(st+"/"+c.name, func(b *testing.B) {
				dst := make([]byte, 0, 2*format.TargetBlockSize)
				var out int
				c0, start := cpuTime(), time.Now()
				for i := 0; i < b.N; i++ {
					out = 0
					for _, blk := range blocks {
						dst = c.enc(dst[:0], blk)
						out += min(len(dst), len(blk)) // a block that does not shrink is stored raw
					}
				}
				cpu := (cpuTime() - c0).Seconds()
				b.ReportMetric(float64(out)/float64(raw), "ratio")
				b.ReportMetric(float64(raw)*float64(b.N)/cpu/1e6, "cpu-MB/s")
				b.ReportMetric(float64(raw)*float64(b.N)/time.Since(start).Seconds()/1e6, "wall-MB/s")
			})
		}
	}
}

type codecCandidate struct {
	name string
	enc  func(dst, src []byte) []byte
}

func codecCandidates() []codecCandidate {
	var cs []codecCandidate
	for _, l := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(l), zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(1))
		if err != nil {
			panic(err)
		}
		cs = append(cs, codecCandidate{"zstd-" + l.String(), func(dst, src []byte) []byte { return e.EncodeAll(src, dst) }})
	}
	var hs huff0.Scratch
	hs.Reuse = huff0.ReusePolicyNone
	return append(cs,
		codecCandidate{"huff0", func(dst, src []byte) []byte {
			out, _, err := huff0.Compress4X(src, &hs)
			if err != nil {
				return append(dst, src...)
			}
			return append(dst, out...)
		}},
		codecCandidate{"s2", func(dst, src []byte) []byte { return s2.Encode(dst[:cap(dst)], src) }},
		codecCandidate{"s2-better", func(dst, src []byte) []byte { return s2.EncodeBetter(dst[:cap(dst)], src) }},
		codecCandidate{"auto", autoEncode()})
}

// autoEncode compresses a block as the default codec choice does
// (format.CodecAuto) and returns its payload without the block prefix.
func autoEncode() func(dst, src []byte) []byte {
	w := format.NewBlockWriter(format.CodecAuto)
	return func(dst, src []byte) []byte {
		// src is a block's entries: hand them over as one put (the codec
		// sees the same bytes, plus a few bytes of header).
		w.Reset()
		if err := w.Add([]byte("k"), src, format.EntryPut); err != nil {
			panic(err)
		}
		return append(dst, w.Finish(nil)[format.BlockPrefixSize:]...)
	}
}

// codecBenchBlocks returns 32 MB of a state's entries as blocks cut the
// way a BlockWriter cuts them, and their raw size.
func codecBenchBlocks(state string) ([][]byte, int) {
	rng := rand.New(rand.NewPCG(7, 7))
	n := 32 << 20 / (16 + benchValLen + 3)
	keys := make([]string, n)
	alphabet := "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range keys {
		if state == "text" {
			keys[i] = fmt.Sprintf("key:%012d", i*31)
			continue
		}
		var k [16]byte
		binary.BigEndian.PutUint64(k[:8], rng.Uint64())
		binary.BigEndian.PutUint64(k[8:], uint64(i))
		keys[i] = string(k[:])
	}
	if state == "binary" {
		alphabet = alphabet[:26]
	}
	slices.Sort(keys)
	w := format.NewBlockWriter(format.CodecNone)
	val := make([]byte, benchValLen)
	var blocks [][]byte
	raw := 0
	cut := func() {
		p := w.Finish(nil)[format.BlockPrefixSize:]
		blocks = append(blocks, p)
		raw += len(p)
	}
	for _, k := range keys {
		for j := range val {
			val[j] = alphabet[rng.IntN(len(alphabet))]
		}
		if w.Len() > 0 && w.Size()+format.EntrySize([]byte(k), val) > format.TargetBlockSize {
			cut()
		}
		if err := w.Add([]byte(k), val, format.EntryPut); err != nil {
			panic(err)
		}
	}
	cut()
	return blocks, raw
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
