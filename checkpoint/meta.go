package checkpoint

import (
	"encoding/binary"
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

// extOffset is the file offset of the header ext.
const extOffset = 16

// ErrBadMeta is returned by the writers for a Meta they cannot record.
var ErrBadMeta = errors.New("kvtool/checkpoint: invalid checkpoint metadata")

// Meta is what a checkpoint records about the state it holds.
type Meta struct {
	StoreID manifest.StoreID // the store that wrote it
	Index   uint64           // applied index: the state includes every entry up to it
	Term    uint64           // term of the entry at Index
	Shards  int              // the store's shard count
}

func (m Meta) check() error {
	if m.Shards < 0 || m.Shards > math.MaxUint32 {
		return fmt.Errorf("%w: %d shards", ErrBadMeta, m.Shards)
	}
	return nil
}

// appendExt appends the header ext encoding of m.
func (m Meta) appendExt(dst []byte) []byte {
	dst = append(dst, m.StoreID[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, m.Index)
	dst = binary.LittleEndian.AppendUint64(dst, m.Term)
	return binary.LittleEndian.AppendUint32(dst, uint32(m.Shards))
}

// parseExt decodes the header ext of the checkpoint at path.
func parseExt(ext []byte, path string) (Meta, error) {
	var m Meta
	if len(ext) != extSize {
		return m, format.Corruptf(path, extOffset, "checkpoint header ext of %d bytes, want %d", len(ext), extSize)
	}
	copy(m.StoreID[:], ext)
	m.Index = binary.LittleEndian.Uint64(ext[16:])
	m.Term = binary.LittleEndian.Uint64(ext[24:])
	m.Shards = int(binary.LittleEndian.Uint32(ext[32:]))
	return m, nil
}

// metaOf reads the Meta of a table and checks that its header, footer and
// file name agree on what a checkpoint must say.
func metaOf(info table.Info) (Meta, error) {
	if info.Magic != format.MagicCheckpoint {
		return Meta{}, format.Corruptf(info.Path, 0, "not a checkpoint (magic %q)", info.Magic)
	}
	m, err := parseExt(info.Ext, info.Path)
	if err != nil {
		return m, err
	}
	return m, checkFooter(m, info)
}

// checkFooter compares the footer's fields with the header's.
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
	return checkName(m, path)
}

// checkName checks that a file named like a checkpoint carries the index
// its name says. Other names (a point-in-time --out file) are not checked.
func checkName(m Meta, path string) error {
	if idx, ok := format.ParseCheckpointName(filepath.Base(path)); ok && idx != m.Index {
		return format.Corruptf(path, 0, "file name says index %d, header says %d", idx, m.Index)
	}
	return nil
}

// Info describes a checkpoint file.
type Info struct {
	Name      string // file name
	Path      string
	Meta      Meta
	Size      int64  // bytes
	Keys      uint64 // key/value pairs
	Blocks    int
	StateHash uint64 // format.StateHasher digest of the pairs
	Checksum  uint64 // whole-file checksum from the footer
	// Err is set by List for a file whose header or footer could not be
	// read; the other fields but Name and Path are then zero.
	Err error
}

func infoOf(t table.Info, m Meta) Info {
	return Info{
		Name: filepath.Base(t.Path), Path: t.Path, Meta: m, Size: t.Size, Keys: t.Puts,
		Blocks: t.Blocks, StateHash: t.StateHash, Checksum: t.Checksum,
	}
}

// Ref returns the manifest's reference to the checkpoint.
func (i Info) Ref() manifest.FileRef {
	return manifest.FileRef{Name: i.Name, Index: i.Meta.Index, Size: i.Size, Checksum: i.Checksum}
}
