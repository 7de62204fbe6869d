//go:build !race

package cluster

import (
	"bufio"
	"bytes"
	"testing"
)

// TestFrameAllocs: encoding and reading an authenticated frame allocates
// nothing once the buffers have grown (the race detector changes the
// counts: not under it). Every raft message pays both.
func TestFrameAllocs(t *testing.T) {
	key := make([]byte, 32)
	w, payload := newMacer(key), make([]byte, 300)
	var out []byte
	if n := testing.AllocsPerRun(100, func() { out = appendFrame(out[:0], w, payload) }); n != 0 {
		t.Errorf("appendFrame: %v allocations per frame", n)
	}
	var stream []byte
	for range 200 {
		stream = appendFrame(stream, w, payload)
	}
	fr := &frameReader{r: bufio.NewReader(bytes.NewReader(stream)), mac: newMacer(key), maxLen: 1 << 20}
	fr.mac.seq = 101 // the frames above follow the 101 AllocsPerRun made
	if n := testing.AllocsPerRun(100, func() {
		if _, err := fr.next(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("frameReader.next: %v allocations per frame", n)
	}
}
