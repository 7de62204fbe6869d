package checkpoint

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/kvtool/kvtool/format"
)

// TestCodecs writes one state with each codec choice and reads it back:
// the blocks carry the codec asked for (zstd or huff0 by default), and whatever
// codec wrote a file, it reads the same state, so files written before the
// default changed still open.
func TestCodecs(t *testing.T) {
	st := randState(rand.New(rand.NewPCG(4, 4)), 3000, 200)
	for _, c := range []struct {
		opts Options
		want format.BlockCodec
	}{
		{Options{}, DefaultCodec},
		{Options{Codec: format.CodecHuff0}, format.CodecHuff0},
		{Options{Codec: format.CodecZstd}, format.CodecZstd},
		{Options{Uncompressed: true}, format.CodecNone},
		{Options{Uncompressed: true, Codec: format.CodecZstd}, format.CodecNone},
		{Options{Background: true}, DefaultCodec},
	} {
		t.Run(fmt.Sprintf("%+v", c.opts), func(t *testing.T) {
			fs := newDir(t)
			info, err := Write(fs, format.SnapDir, testMeta, st, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Open(fs, info.Path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			codecs := map[format.BlockCodec]int{}
			h := format.NewStateHasher()
			err = r.Blocks(0, func(b *format.Block) error {
				codecs[b.Codec()]++
				for i := 0; i < b.Len(); i++ {
					k, v, _ := b.Entry(i)
					h.Add(k, v)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// zstd's fastest level leaves some of these blocks raw (see
			// DefaultCodec); huff0 compresses every one.
			ok := codecs[c.want] == info.Blocks
			if c.want == format.CodecAuto { // zstd or huff0, block by block
				ok = codecs[format.CodecZstd]+codecs[format.CodecHuff0] > 0 &&
					codecs[format.CodecZstd]+codecs[format.CodecHuff0]+codecs[format.CodecNone] == info.Blocks
			}
			if c.want == format.CodecZstd {
				ok = codecs[c.want] > 0 && codecs[c.want]+codecs[format.CodecNone] == info.Blocks
			}
			if !ok {
				t.Errorf("blocks by codec %v, want all %d with %s", codecs, info.Blocks, c.want)
			}
			if h.Sum64() != st.hash() || info.StateHash != st.hash() {
				t.Errorf("read back hash %016x, footer %016x, state %016x", h.Sum64(), info.StateHash, st.hash())
			}
		})
	}
}
