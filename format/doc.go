// Package format owns kvtool's on-disk vocabulary: the file header every file
// starts with, the checksummed frame every record and block is stored in, the
// structured corruption error, fixed-width file names, and the one helper that
// publishes a whole file durably. Every other package reads and writes bytes
// through these primitives, so one set of rules holds for WAL segments,
// checkpoints, deltas, manifests and transfer streams.
//
// # On-disk layout
//
// All integers are little-endian.
//
//	File header (16 + extLen + 8 bytes):
//	+----------+-----------+------------+------------+---------------+------------+
//	| magic 8B | version 2 | reserved 2 | extLen u32 | ext (extLen)  | xxh64 u64  |
//	+----------+-----------+------------+------------+---------------+------------+
//	  the magic names the file kind; ext holds kind-specific fields;
//	  the checksum covers every byte before it.
//
//	Frame (16 + length bytes):
//	+-----------+------------+---------+------------+--------------------+
//	| xxh64 u64 | length u32 | type u8 | reserved 3 | payload (length)   |
//	+-----------+------------+---------+------------+--------------------+
//	  the checksum covers bytes [8, 16+length): length, type, reserved and
//	  payload. A frame header of all zeros (or a zero tail shorter than a
//	  header) marks the end of written data in a preallocated file; type 0 is
//	  never valid.
//
//	Block (the payload of a FrameBlock frame; checkpoints and deltas):
//	+----------+------------+-----------+-------------------------------------+
//	| codec u8 | rawLen u32 | count u32 | entries, compressed as codec says   |
//	+----------+------------+-----------+-------------------------------------+
//	  entry: keyLen uvarint | valLen uvarint | kind u8 | key | value
//	  rawLen is the uncompressed size of the entries (at most MaxBlockSize);
//	  keys strictly increase; kind 1 = put, 2 = delete (no value). Codec 0
//	  stores the entries as they are, codec 1 as one zstd frame, codec 2 as
//	  one huff0 4X stream with its table (rawLen at most Huff0MaxBlock);
//	  the enclosing frame's checksum covers the block. A file is its blocks, then
//	  a FrameIndex frame (first key, offset, length of every block), then a
//	  FrameFooter frame.
//
// A length read from disk is checked against MaxFrameSize (MaxBlockSize for a
// block) and against the bytes remaining before anything is allocated.
//
// # Concurrency
//
// Everything here is stateless or owned by one goroutine (an AtomicFile, a
// FrameReader, a BlockWriter), except a decoded Block, which is immutable and
// safe for concurrent readers.
package format
