// Package segment is kvtool's write-ahead log: records with an index, a term
// and a type, appended with group commit to preallocated segment files named
// by their first index, read back from any index, verified, and repaired.
//
// # On-disk layout
//
// A segment is DATA/wal/<format.SegmentName(first)>; integers are
// little-endian. It starts with a format header (magic format.MagicSegment)
// whose 48-byte ext links it to the segment before it (prevFirst/prevSum:
// 0/0 for a log's first), so a missing, reordered or foreign one breaks the
// chain; the header checksum covers all of the header:
//
//	| storeID 16B | first u64 | term u64 | prevFirst u64 | prevHeaderSum u64 |
//
// Frames follow (format framing: xxh64 of length, type and payload | length
// u32 | type u8 | 3 reserved | payload). Entries (FrameWALTxn, Noop, Conf)
// carry | index u64 | term u64 | data |, indexes contiguous within and
// across segments. Markers carry one u64 and take no index: FrameWALSegInfo
// first, the size the file was preallocated to; FrameWALClose, written by
// a clean shutdown, the last index; FrameWALSeal, last in a sealed segment,
// the next segment's first index. A rotation publishes the next segment
// and seals the old one before any entry goes into the new one, so a lost
// newest segment leaves a seal naming it, and a newest segment shorter
// than its preallocation was truncated. (Segments written before markers
// existed have none and still read.)
//
// The file is preallocated with zeros, so data ends at the first all-zero
// frame header, and every byte after it must be zero. Only the newest
// segment may end in a torn frame: one whose bytes run out, or end in
// zeros; a whole frame with a bad checksum is corruption. Sealed segments
// are trimmed to their data.
//
// # Concurrency
//
// All methods of *Log and *Pending are safe for concurrent use; one flusher
// goroutine does all writes and syncs, and a worker prepares the next
// segment in the background. A *Reader belongs to one goroutine. List,
// NewReader, Verify and Repair work on a directory no Log is writing.
package segment
