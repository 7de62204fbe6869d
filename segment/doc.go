// Package segment is kvtool's write-ahead log: records with an index, a term
// and a type, appended with group commit to preallocated segment files named
// by their first index, read back from any index, verified, and repaired.
//
// # On-disk layout
//
// A segment is DATA/wal/<format.SegmentName(first)>; integers are
// little-endian. It starts with a format header (magic format.MagicSegment)
// whose 48-byte ext links it to the segment before it:
//
//	+-------------+-----------+----------+---------------+-------------------+
//	| storeID 16B | first u64 | term u64 | prevFirst u64 | prevHeaderSum u64 |
//	+-------------+-----------+----------+---------------+-------------------+
//	  prevFirst/prevHeaderSum: first index and header checksum of the previous
//	  segment (0/0 for a log's first), so a missing, reordered or foreign
//	  segment breaks the chain. The header checksum covers all of the header.
//
// Records follow, one format frame each (frame type = entry type):
//
//	+-----------+------------+---------+------------+-----------+----------+------+
//	| xxh64 u64 | length u32 | type u8 | reserved 3 | index u64 | term u64 | data |
//	+-----------+------------+---------+------------+-----------+----------+------+
//	  the checksum covers everything after it: length, type, payload.
//
// The file is preallocated with zeros, so data ends at the first all-zero
// frame header, and every byte after it must be zero. Indexes are contiguous
// within and across segments, so a stale record is never replayed. Only the
// newest segment may end in a torn record; anything else is corruption.
// Sealed segments are trimmed to their data.
//
// # Concurrency
//
// All methods of *Log and *Pending are safe for concurrent use; one flusher
// goroutine does all writes and syncs. A *Reader belongs to one goroutine.
// List, NewReader, Verify and Repair work on a directory no Log is writing.
package segment
