package store

import (
	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
)

// BaseBlocks holds the decoded blocks of one base checkpoint, routed to
// their shards as Open's load would route them, so that opening the
// store the checkpoint is the base of (Options.Base) does not decode it a
// second time. A cluster member fills it from the verification of the
// snapshot it received (table.VerifyOptions.Block), which decodes and
// checks every block anyway, then opens the staged store on it.
//
// Add is called from one goroutine, in file order, and only with blocks
// that passed their checks; the holder must drop a BaseBlocks whose
// verification then found any problem.
type BaseBlocks struct {
	index, checksum uint64
	l               *loader
	taken           bool
}

// NewBaseBlocks returns an empty BaseBlocks for the checkpoint info
// describes (its index, shard count and whole-file checksum identify it).
func NewBaseBlocks(info checkpoint.Info) *BaseBlocks {
	l := newLoader(max(1, info.Meta.Shards))
	l.base = make([][][]item, len(l.shards))
	return &BaseBlocks{index: info.Meta.Index, checksum: info.Checksum, l: l}
}

// Add routes the pairs of b, the next block of the checkpoint, to their
// shards. b and its bytes are the BaseBlocks' from then on.
func (bb *BaseBlocks) Add(b *format.Block) error {
	rb, err := bb.l.routeBlock(b)
	if err != nil {
		return err
	}
	bb.l.addRouted(rb)
	return nil
}

// Index is the checkpoint's index.
func (bb *BaseBlocks) Index() uint64 { return bb.index }

// Taken reports whether an Open took its state from bb (rather than
// ignoring it and decoding the file).
func (bb *BaseBlocks) Taken() bool { return bb.taken }

// matches reports whether bb holds the checkpoint r reads, for a store
// of shards shards.
func (bb *BaseBlocks) matches(r *checkpoint.Reader, shards int) bool {
	info := r.Info()
	return bb != nil && info.Meta.Index == bb.index && info.Checksum == bb.checksum && len(bb.l.base) == shards
}
