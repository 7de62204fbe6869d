package delta

import (
	"encoding/binary"
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
	// extOffset is the file offset of the header ext.
	extOffset = 16
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

func (m Meta) check() error {
	switch {
	case m.To <= m.From:
		return fmt.Errorf("%w: empty index range (%d, %d]", ErrBadMeta, m.From, m.To)
	case len(m.Parent) > MaxParentLen || (m.Parent != "" && filepath.Base(m.Parent) != m.Parent):
		return fmt.Errorf("%w: parent %q is not a file name", ErrBadMeta, m.Parent)
	case m.Parent == "" && m.From != 0:
		return fmt.Errorf("%w: no parent, but the range starts at %d", ErrBadMeta, m.From)
	}
	return nil
}

func (m Meta) appendExt(dst []byte) []byte {
	dst = append(dst, m.StoreID[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, m.From)
	dst = binary.LittleEndian.AppendUint64(dst, m.To)
	dst = binary.LittleEndian.AppendUint64(dst, m.Term)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(m.Parent)))
	return append(dst, m.Parent...)
}

func parseExt(ext []byte, path string) (Meta, error) {
	var m Meta
	if len(ext) < extFixed {
		return m, format.Corruptf(path, extOffset, "delta header ext of %d bytes, want at least %d", len(ext), extFixed)
	}
	copy(m.StoreID[:], ext)
	m.From = binary.LittleEndian.Uint64(ext[16:])
	m.To = binary.LittleEndian.Uint64(ext[24:])
	m.Term = binary.LittleEndian.Uint64(ext[32:])
	n := int(binary.LittleEndian.Uint16(ext[40:]))
	if n > MaxParentLen || len(ext) != extFixed+n {
		return m, format.Corruptf(path, extOffset+40, "parent name of %d bytes in a %d-byte ext", n, len(ext))
	}
	m.Parent = string(ext[extFixed:])
	if m.check() != nil {
		return m, format.Corruptf(path, extOffset, "delta header says range (%d, %d], parent %q", m.From, m.To, m.Parent)
	}
	return m, nil
}

// metaOf reads the Meta of a table and checks that its header, footer and
// file name agree.
func metaOf(info table.Info) (Meta, error) {
	if info.Magic != format.MagicDelta {
		return Meta{}, format.Corruptf(info.Path, 0, "not a delta (magic %q)", info.Magic)
	}
	m, err := parseExt(info.Ext, info.Path)
	if err != nil {
		return m, err
	}
	return m, checkFooter(m, info)
}

func checkFooter(m Meta, info table.Info) error {
	if info.FromIndex != m.From || info.Index != m.To || info.Term != m.Term {
		return format.Corruptf(info.Path, info.FooterOffset(), "footer says (%d, %d] term %d, header (%d, %d] term %d",
			info.FromIndex, info.Index, info.Term, m.From, m.To, m.Term)
	}
	return checkName(m, info.Path)
}

// checkName checks that a file named like a delta carries the range its
// name says.
func checkName(m Meta, path string) error {
	if from, to, ok := format.ParseDeltaName(filepath.Base(path)); ok && (from != m.From || to != m.To) {
		return format.Corruptf(path, 0, "file name says (%d, %d], header says (%d, %d]", from, to, m.From, m.To)
	}
	return nil
}

// Info describes a delta file.
type Info struct {
	Name       string // file name
	Path       string
	Meta       Meta
	Size       int64 // bytes
	Puts       uint64
	Tombstones uint64
	Blocks     int
	Hash       uint64 // digest of the entries, tombstones included (not a state hash)
	Checksum   uint64 // whole-file checksum from the footer
	// Err is set by List for a delta whose header or footer could not be
	// read; the other fields but Name and Path are then zero.
	Err error
}

func infoOf(t table.Info, m Meta) Info {
	return Info{
		Name: filepath.Base(t.Path), Path: t.Path, Meta: m, Size: t.Size, Puts: t.Puts,
		Tombstones: t.Tombstones, Blocks: t.Blocks, Hash: t.StateHash, Checksum: t.Checksum,
	}
}

// Keys returns the number of keys the delta changes.
func (i Info) Keys() uint64 { return i.Puts + i.Tombstones }

// Ref returns the manifest's reference to the delta.
func (i Info) Ref() manifest.FileRef {
	return manifest.FileRef{Name: i.Name, FromIndex: i.Meta.From, Index: i.Meta.To, Size: i.Size, Checksum: i.Checksum}
}
