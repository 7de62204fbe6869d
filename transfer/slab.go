package transfer

// slab copies small byte slices into shared blocks: one allocation for
// many copies instead of one each. The frames of a log tail are small
// (a few hundred bytes) and many (some 20,000 in a join), and both ends
// copied each one (the sender every entry it reads ahead of the
// connection, the receiver every frame it reads ahead of the disk). A
// block stays alive while any copy in it does. Not safe for concurrent
// use: each goroutine that copies has its own.
type slab struct{ buf []byte }

const (
	slabBlock = 64 << 10       // the size of a block
	slabMax   = slabBlock / 16 // larger slices get an allocation of their own
)

// clone returns a copy of b (nil for nil), whose capacity is its length:
// an append to it never writes into the next copy.
func (s *slab) clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	if len(b) > slabMax {
		return append([]byte(nil), b...)
	}
	if cap(s.buf)-len(s.buf) < len(b) {
		s.buf = make([]byte, 0, slabBlock)
	}
	n := len(s.buf)
	s.buf = append(s.buf, b...)
	return s.buf[n:len(s.buf):len(s.buf)]
}
