package segment

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Name       string // file name (format.SegmentName(FirstIndex))
	Path       string // path of the file
	FirstIndex uint64 // index named by the header
	LastIndex  uint64 // index of the last record; FirstIndex-1 when empty
	Records    int64  // number of records
	Size       int64  // bytes of data (header and records), not preallocation
	Term       uint64 // term in the header
}
