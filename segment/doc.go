// Package segment is kvtool's write-ahead log: records with an index, a term
// and a type, appended with group commit to preallocated segment files named
// by their first index, read back from any index, verified, and repaired.
//
// # On-disk layout
//
// A segment is DATA/wal/<format.SegmentName(first)>; integers are
// little-endian. Its format header (magic format.MagicSegment, checksum
// over the whole header) has a 48-byte ext that links it to the segment
// before it (0/0 for a log's first), so a missing, reordered or foreign
// one breaks the chain:
//
//	| storeID 16B | first u64 | term u64 | prevFirst u64 | prevHeaderSum u64 |
//
// Format frames follow. Entries (FrameWALTxn, Noop, Conf, Raft) carry
// | index u64 | term u64 | data |, indexes contiguous within and across
// segments. Markers carry one u64 and take no index: FrameWALSegInfo
// first, the preallocated size; FrameWALClose, from a clean shutdown, the
// last index; FrameWALSeal, last in a sealed segment, the next segment's
// first index. A rotation publishes the next segment and seals the old one
// before any entry goes into the new one, so a lost newest segment leaves
// a seal naming it; a newest one shorter than its preallocation was
// truncated. TruncateAfter first records its cut in the intent file
// TRUNCATE (last index u64 | xxh64 of it), which Open finishes.
//
// Data ends at the first all-zero frame header, and every byte after it
// must be zero. Damage is a *format.CorruptionError naming file and
// offset. Only the newest segment may end in a torn frame (its bytes run
// out, or end in zeros), which also matches ErrTornTail; a whole frame
// with a bad checksum is corruption, and an intact frame holding a wrong
// record matches ErrBadRecord. Sealed segments are trimmed to their data.
//
// # Concurrency
//
// All methods of *Log and *Pending are safe for concurrent use; one flusher
// goroutine does the writes and syncs (with Options.CallerFlush, Flush and
// Wait do them on their caller's goroutine, one writer at a time under
// Log.flushMu), a worker prepares the next segment
// in the background, and each field of Log says who owns it. A *Reader
// belongs to one goroutine. List, NewReader, Verify, Repair and
// TruncateAfter work on a directory no Log is writing.
package segment
