package checkpoint

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/table"
)

// extSize is the size of a checkpoint's header ext.
const extSize = 16 + 8 + 8 + 4

// ErrBadMeta is returned by the writers for a Meta they cannot record.
var ErrBadMeta = errors.New("kvtool/checkpoint: invalid checkpoint metadata")

// Meta is what a checkpoint records about the state it holds.
type Meta struct {
	StoreID manifest.StoreID // the store that wrote it
	Index   uint64           // applied index: the state includes every entry up to it
	Term    uint64           // term of the entry at Index
	Shards  int              // the store's shard count
}

// Kind is the checkpoint kind of table file: what a checkpoint's header,
// footer and name say, for the table package's reader, writer, lister and
// verifier.
var Kind = &table.Kind[Meta, Info]{
	Noun:        "checkpoint",
	Magic:       format.MagicCheckpoint,
	IsName:      isName,
	Ext:         extFields,
	Check:       Meta.check,
	ErrBadMeta:  ErrBadMeta,
	Footer:      func(m Meta) (index, fromIndex, term uint64) { return m.Index, 0, m.Term },
	CheckFooter: checkFooter,
	CheckName:   checkName,
	Describe:    infoOf,
}

// check says why m cannot be recorded.
func (m Meta) check() error {
	if m.Shards < 0 || m.Shards > math.MaxUint32 {
		return fmt.Errorf("%d shards", m.Shards)
	}
	return nil
}

// extFields lists the header ext: storeID [16] | index u64 | term u64 |
// shards u32.
func extFields(c *table.ExtCodec, m *Meta) {
	shards := uint32(m.Shards) // check keeps it in range
	c.Bytes(m.StoreID[:])
	c.Uint64(&m.Index)
	c.Uint64(&m.Term)
	c.Uint32(&shards)
	m.Shards = int(shards)
}

// checkFooter compares the footer's fields with the header's: a
// checkpoint's footer repeats its index and term, covers the range from 0
// and holds no tombstones.
func checkFooter(m Meta, info table.Info) error {
	off, path := info.FooterOffset(), info.Path
	switch {
	case info.Index != m.Index || info.Term != m.Term:
		return format.Corruptf(path, off, "footer says index %d term %d, header index %d term %d", info.Index, info.Term, m.Index, m.Term)
	case info.FromIndex != 0:
		return format.Corruptf(path, off, "footer of a checkpoint has from index %d", info.FromIndex)
	case info.Tombstones != 0:
		return format.Corruptf(path, off, "checkpoint holds %d tombstones", info.Tombstones)
	}
	return nil
}

// isName reports whether name is a checkpoint's.
func isName(name string) bool {
	_, ok := format.ParseCheckpointName(name)
	return ok
}

// checkName checks that a file named like a checkpoint carries the index
// its name says. Other names (a point-in-time --out file) are not checked.
func checkName(m Meta, path string) error {
	if idx, ok := format.ParseCheckpointName(filepath.Base(path)); ok && idx != m.Index {
		return format.Corruptf(path, 0, "file name says index %d, header says %d", idx, m.Index)
	}
	return nil
}

// Info describes a checkpoint file: what table.File says of every kind
// of file, and its pairs.
type Info struct {
	table.File[Meta]
	Keys      uint64 // key/value pairs
	StateHash uint64 // format.StateHasher digest of the pairs
}

// infoOf describes a checkpoint from its file and table.
func infoOf(f table.File[Meta], t table.Info) Info {
	return Info{File: f, Keys: t.Puts, StateHash: t.StateHash}
}

// Ref returns the manifest's reference to the checkpoint.
func (i Info) Ref() manifest.FileRef {
	return manifest.FileRef{Name: i.Name, Index: i.Meta.Index, Size: i.Size, Checksum: i.Checksum}
}
