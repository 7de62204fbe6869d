package segment

import "testing"

// TestGrowBatch: a batch buffer filled by small records up to a full
// batch is copied, in all its growing, less than twice a batch's bytes
// (append's own growth, a quarter at a time for large slices, copied
// about five times as much), and it never grows past what a batch needs.
func TestGrowBatch(t *testing.T) {
	const maxBatch = 4 << 20
	var buf []byte
	copied := 0
	rec := make([]byte, 520)
	for len(buf)+len(rec) <= maxBatch {
		before := cap(buf)
		buf = growBatch(buf, len(rec), maxBatch)
		if cap(buf) != before {
			copied += len(buf)
		}
		if cap(buf) < len(buf)+len(rec) {
			t.Fatalf("capacity %d after growBatch for %d more bytes at length %d", cap(buf), len(rec), len(buf))
		}
		buf = append(buf, rec...)
	}
	if copied >= 2*maxBatch {
		t.Fatalf("%d bytes copied growing a batch buffer to %d: want under twice the batch", copied, len(buf))
	}
	if cap(buf) > maxBatch+maxBatch/8 {
		t.Fatalf("capacity %d for a batch limit of %d", cap(buf), maxBatch)
	}
	// A record larger than a batch (alone in it) still gets its room.
	big := growBatch(nil, 3*maxBatch, maxBatch)
	if cap(big) < 3*maxBatch {
		t.Fatalf("capacity %d for a record of %d bytes", cap(big), 3*maxBatch)
	}
}
