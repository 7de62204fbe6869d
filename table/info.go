package table

// Info describes a table: what its header and footer say.
type Info struct {
	Path        string // the path it was written to or opened at
	Magic       string // format.MagicCheckpoint or format.MagicDelta
	Ext         []byte // the kind-specific header fields
	Size        int64  // file size in bytes
	Blocks      int    // number of blocks
	Puts        uint64 // entries that hold a value
	Tombstones  uint64 // entries that delete their key
	StateHash   uint64 // hash of the entries (the state hash if Tombstones == 0); see the package doc
	Index       uint64 // applied index the table brings the state to
	FromIndex   uint64 // exclusive lower bound of the index range (0 for a checkpoint)
	Term        uint64 // term of the entry at Index
	Checksum    uint64 // xxh64 of every byte before the footer frame
	IndexOffset int64  // offset of the first index frame
	IndexLength int64  // bytes of index frames
}

// Entries returns the number of entries, puts and tombstones.
func (i *Info) Entries() uint64 { return i.Puts + i.Tombstones }

// FooterOffset returns the offset of the footer frame.
func (i *Info) FooterOffset() int64 { return i.Size - FooterSize }

func infoOf(path, magic string, ext []byte, size int64, f footer) Info {
	return Info{
		Path: path, Magic: magic, Ext: ext, Size: size,
		Blocks: int(f.blocks), Puts: f.puts, Tombstones: f.tombstones,
		StateHash: f.hash, Index: f.index, FromIndex: f.fromIndex, Term: f.term,
		Checksum: f.checksum, IndexOffset: int64(f.indexOff), IndexLength: int64(f.indexLen),
	}
}
