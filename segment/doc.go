// Package segment is kvtool's write-ahead log: records with an index, a term
// and a type, appended with group commit to preallocated segment files named
// by their first index, read back from any index, verified, and repaired.
//
// # On-disk layout
//
// A segment is DATA/wal/<format.SegmentName(first)>. All integers are
// little-endian. The file starts with a format header (magic
// format.MagicSegment) whose 48-byte ext is:
//
//	+-------------+------------+---------+-------------------+----------------------+
//	| storeID 16B | first u64  | term u64| prevFirst u64     | prevHeaderSum u64    |
//	+-------------+------------+---------+-------------------+----------------------+
//	  prevFirst and prevHeaderSum name the previous segment (its first index
//	  and its header checksum; 0/0 in the first segment of a log), so a
//	  missing, reordered or foreign segment is detected.
//
// Records follow, one format frame each; the frame type is the entry type:
//
//	+-----------+------------+---------+----------+-----------+-----------+------+
//	| xxh64 u64 | length u32 | type u8 | reserved | index u64 | term u64  | data |
//	+-----------+------------+---------+----------+-----------+-----------+------+
//	  the checksum covers everything after it, payload included.
//
// The file is preallocated (zeros), so the end of data is the first all-zero
// frame header; every byte after it must be zero. Indexes are contiguous
// within and across segments, so a stale record is never replayed. Only the
// newest segment may end in a torn record; anything else is corruption.
//
// # Concurrency
//
// All methods of *Log and *Pending are safe for concurrent use. A *Reader is
// owned by one goroutine. List, NewReader, Verify and Repair work on a
// directory no Log has open.
package segment
