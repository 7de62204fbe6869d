package segment

// Position returns where the last entry Next returned is stored: the name
// of its segment file and the byte offset of its frame in that file. It is
// meaningful only after Next returned an entry.
func (r *Reader) Position() (segment string, offset int64) {
	if r.i >= len(r.names) {
		return "", r.off
	}
	return r.names[r.i], r.off
}
