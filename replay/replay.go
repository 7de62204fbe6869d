package replay

import (
	"errors"
	"fmt"
	"io"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// Target receives the effects of replayed transactions. key and value alias
// the reader's buffer and are valid only during the call.
type Target interface {
	Apply(kind uint8, key, value []byte)
}

// Result says how far a replay got.
type Result struct {
	AppliedIndex uint64 `json:"applied_index"` // index of the last entry applied (from-1 if none)
	Records      int64  `json:"records"`       // WAL entries read
	Effects      int64  `json:"effects"`       // puts and deletes applied
	TornTail     bool   `json:"torn_tail"`     // stopped at a torn tail (WALOptions.StopAtTornTail)
	Term         uint64 `json:"term"`          // term of the last entry applied (0 if none)
}

// ErrGap is returned (wrapped) when the WAL does not start at the index the
// replay needs: history is missing.
var ErrGap = errors.New("kvtool/replay: WAL does not cover the needed index")

// WALOptions tune WAL.
type WALOptions struct {
	// StopAtTornTail treats a torn tail of the newest segment as the end of
	// the log (Result.TornTail says so) instead of an error. Read-only
	// openers use it: they must not cut the tail, and nothing after a torn
	// tail was ever acknowledged.
	StopAtTornTail bool
}

// WAL applies the WAL entries of walDir with index in [from, to] (to == 0:
// through the end of the log) to t. The first entry read must be exactly
// from, unless the log holds nothing at or after from.
func WAL(fsys vfs.FS, walDir string, from, to uint64, t Target, opts ...WALOptions) (Result, error) {
	r, err := segment.NewReader(fsys, walDir, from)
	if err != nil {
		return Result{AppliedIndex: from - 1}, err
	}
	defer r.Close()
	return Entries(r, walDir, from, to, t, opts...)
}

// Entries is WAL over a reader the caller opened at from (and closes): the
// store replays through its open log's reader, which stops at the log's
// end without checking the newest segment's preallocated remainder a
// second time (segment.Open already did). walDir names the log in errors.
func Entries(r *segment.Reader, walDir string, from, to uint64, t Target, opts ...WALOptions) (Result, error) {
	var o WALOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	res := Result{AppliedIndex: from - 1}
	for to == 0 || res.AppliedIndex < to {
		e, err := r.Next()
		if err == io.EOF {
			return res, nil
		} else if o.StopAtTornTail && errors.Is(err, segment.ErrTornTail) {
			res.TornTail = true
			return res, nil
		} else if err != nil {
			return res, err
		}
		if e.Index != res.AppliedIndex+1 {
			return res, fmt.Errorf("%w: want index %d, the log has %d next (in %s)", ErrGap, res.AppliedIndex+1, e.Index, walDir)
		}
		if err := applyEntry(e, t, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

func applyEntry(e segment.Entry, t Target, res *Result) error {
	if e.Type == format.FrameWALTxn {
		err := format.DecodeTxnRecord(e.Data, func(kind uint8, key, value []byte) {
			t.Apply(kind, key, value)
			res.Effects++
		})
		if err != nil {
			return fmt.Errorf("kvtool/replay: WAL entry %d: %w: %v", e.Index, format.ErrCorruption, err)
		}
	}
	res.AppliedIndex, res.Term = e.Index, e.Term
	res.Records++
	return nil
}
