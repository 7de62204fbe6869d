package table

import (
	"fmt"

	"github.com/kvtool/kvtool/format"
)

// maxProblems bounds the problems a Report keeps; later ones are counted.
const maxProblems = 1000

// Report is what Verify found.
type Report struct {
	Path     string
	Size     int64
	Header   format.Header // the file header, if HeaderOK
	HeaderOK bool
	Footer   Info // what the footer says, if FooterOK
	FooterOK bool

	Blocks     int    // blocks found intact
	BadBlocks  int    // block frames that failed their checksum or decoding
	Puts       uint64 // puts counted in intact blocks
	Tombstones uint64 // tombstones counted in intact blocks
	StateHash  uint64 // hash recomputed from the intact blocks
	Checksum   uint64 // whole-file checksum recomputed over the bytes before the footer

	// Problems lists every damage found, in file order as far as possible,
	// each with the offset of the damaged header, frame or field.
	Problems []*format.CorruptionError
	// Omitted counts problems found beyond the first maxProblems.
	Omitted int
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Err returns nil if no problem was found, else an error matching
// format.ErrCorruption that names the first problem and the count.
func (r *Report) Err() error {
	n := len(r.Problems) + r.Omitted
	if n == 0 {
		return nil
	}
	if n == 1 {
		return r.Problems[0]
	}
	return fmt.Errorf("%w (and %d more problems)", r.Problems[0], n-1)
}

// Addf records a problem at offset off of the report's file. Packages that
// check kind-specific fields (checkpoint, delta) add theirs with it.
func (r *Report) Addf(off int64, reason string, args ...any) {
	r.add(format.Corruptf(r.Path, off, reason, args...))
}

func (r *Report) add(e *format.CorruptionError) {
	if len(r.Problems) >= maxProblems {
		r.Omitted++
		return
	}
	r.Problems = append(r.Problems, e)
}

// addErr records err if it is corruption and returns it otherwise: an I/O
// error or an unknown version ends the verification.
func (r *Report) addErr(err error) error {
	if ce := format.AsCorruption(err); ce != nil {
		r.add(ce)
		return nil
	}
	return err
}

// problemIn reports whether a problem was recorded in [from, to).
func (r *Report) problemIn(from, to int64) bool {
	for _, p := range r.Problems {
		if p.Offset >= from && p.Offset < to {
			return true
		}
	}
	return false
}
