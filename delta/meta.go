package delta

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/table"
)

const (
	// extFixed is the size of the fixed part of a delta's header ext.
	extFixed = 16 + 8 + 8 + 8 + 2
	// MaxParentLen bounds the parent name recorded in a delta.
	MaxParentLen = 255
)

// ErrBadMeta is returned by the writers for a Meta they cannot record.
var ErrBadMeta = errors.New("kvtool/delta: invalid delta metadata")

// Meta is what a delta records about the changes it holds.
type Meta struct {
	StoreID manifest.StoreID // the store that wrote it
	From    uint64           // exclusive lower bound of the index range
	To      uint64           // inclusive upper bound: values are as of this index
	Term    uint64           // term of the entry at To
	Parent  string           // file name of the base checkpoint or previous delta ("" for the empty state at 0)
}

// Kind is the delta kind of table file: what a delta's header, footer and
// name say, for the table package's reader, writer, lister and verifier.
var Kind = &table.Kind[Meta, Info]{
	Noun:        "delta",
	Magic:       format.MagicDelta,
	IsName:      isName,
	Ext:         extFields,
	Check:       Meta.check,
	ErrBadMeta:  ErrBadMeta,
	Footer:      func(m Meta) (index, fromIndex, term uint64) { return m.To, m.From, m.Term },
	CheckFooter: checkFooter,
	CheckName:   checkName,
	Describe:    infoOf,
}

// check says why m cannot be recorded.
func (m Meta) check() error {
	switch {
	case m.To <= m.From:
		return fmt.Errorf("empty index range (%d, %d]", m.From, m.To)
	case len(m.Parent) > MaxParentLen || (m.Parent != "" && filepath.Base(m.Parent) != m.Parent):
		return fmt.Errorf("parent %q is not a file name", m.Parent)
	case m.Parent == "" && m.From != 0:
		return fmt.Errorf("no parent, but the range starts at %d", m.From)
	}
	return nil
}

// extFields lists the header ext: storeID [16] | from u64 | to u64 |
// term u64 | parentLen u16 | parent.
func extFields(c *table.ExtCodec, m *Meta) {
	c.Bytes(m.StoreID[:])
	c.Uint64(&m.From)
	c.Uint64(&m.To)
	c.Uint64(&m.Term)
	c.Name(&m.Parent, MaxParentLen, "parent name")
}

// checkFooter checks that the footer records the header's range and term.
func checkFooter(m Meta, info table.Info) error {
	if info.FromIndex != m.From || info.Index != m.To || info.Term != m.Term {
		return format.Corruptf(info.Path, info.FooterOffset(), "footer says (%d, %d] term %d, header (%d, %d] term %d",
			info.FromIndex, info.Index, info.Term, m.From, m.To, m.Term)
	}
	return nil
}

// isName reports whether name is a delta's.
func isName(name string) bool {
	_, _, ok := format.ParseDeltaName(name)
	return ok
}

// checkName checks that a file named like a delta carries the range its
// name says.
func checkName(m Meta, path string) error {
	if from, to, ok := format.ParseDeltaName(filepath.Base(path)); ok && (from != m.From || to != m.To) {
		return format.Corruptf(path, 0, "file name says (%d, %d], header says (%d, %d]", from, to, m.From, m.To)
	}
	return nil
}

// Info describes a delta file: what table.File says of every kind of
// file, and its entries.
type Info struct {
	table.File[Meta]
	Puts       uint64
	Tombstones uint64
	Hash       uint64 // digest of the entries, tombstones included (not a state hash)
}

// infoOf describes a delta from its file and table.
func infoOf(f table.File[Meta], t table.Info) Info {
	return Info{File: f, Puts: t.Puts, Tombstones: t.Tombstones, Hash: t.StateHash}
}

// Keys returns the number of keys the delta changes.
func (i Info) Keys() uint64 { return i.Puts + i.Tombstones }

// Ref returns the manifest's reference to the delta.
func (i Info) Ref() manifest.FileRef {
	return manifest.FileRef{Name: i.Name, FromIndex: i.Meta.From, Index: i.Meta.To, Size: i.Size, Checksum: i.Checksum}
}
