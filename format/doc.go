// Package format owns kvtool's on-disk vocabulary: the file header every
// file starts with, the checksummed frame every record and block is stored
// in, the block encoding of checkpoints and deltas, the structured
// corruption error, fixed-width file names, and the one durable publish of
// a whole file. WAL segments, checkpoints, deltas, manifests and transfer
// streams (xfer.go) all go through these primitives, so one set of rules
// holds for all of them.
//
// # On-disk layout
//
// All integers are little-endian.
//
//	File header (16 + extLen + 8 bytes):
//	+----------+-----------+------------+------------+---------------+------------+
//	| magic 8B | version 2 | reserved 2 | extLen u32 | ext (extLen)  | xxh64 u64  |
//	+----------+-----------+------------+------------+---------------+------------+
//	  the magic names the file kind, ext holds its fields; the checksum covers every byte before it
//	Frame (16 + length bytes):
//	+-----------+------------+---------+------------+--------------------+
//	| xxh64 u64 | length u32 | type u8 | reserved 3 | payload (length)   |
//	+-----------+------------+---------+------------+--------------------+
//	  the checksum covers bytes [8, 16+length); an all-zero header ends the data of a
//	  preallocated file; type 0 is never valid
//	Block (the payload of a FrameBlock frame):
//	+----------+------------+-----------+-------------------------------------+
//	| codec u8 | rawLen u32 | count u32 | entries, compressed as codec says   |
//	+----------+------------+-----------+-------------------------------------+
//	  entry: keyLen uvarint | valLen uvarint | kind u8 (1 put, 2 delete) | key | value;
//	  keys strictly increase; rawLen <= MaxBlockSize; codec 0 = stored,
//	  1 = one zstd frame, 2 = one huff0 4X stream (rawLen <= Huff0MaxBlock)
//
// A length read from disk is checked against MaxFrameSize (MaxBlockSize for
// a block) and against the bytes remaining before anything is allocated.
// Damage is a *CorruptionError naming the file and offset.
//
// # Concurrency
//
// Everything here is stateless or owned by one goroutine (an AtomicFile, a
// FrameReader, a BlockWriter), except a decoded Block, which is immutable
// and safe for concurrent readers.
package format
