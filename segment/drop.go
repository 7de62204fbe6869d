package segment

import "fmt"

// DropBefore removes whole sealed segments whose every record is below
// index, and returns their paths. It never removes the active segment.
// Segments go oldest first, each removal followed by a sync of the
// directory, so a crash at any point leaves a contiguous suffix of the log
// (the first segment then links to a dropped one, which is allowed). It
// works on a failed log (it writes no record) but not after Close.
func (l *Log) DropBefore(index uint64) ([]string, error) {
	l.dropMu.Lock()
	defer l.dropMu.Unlock()
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	var removed []string
	for {
		path, ok := l.droppable(index)
		if !ok {
			return removed, nil
		}
		if err := l.fs.Remove(path); err != nil {
			return removed, fmt.Errorf("kvtool/segment: drop %s: %w", path, err)
		}
		l.segMu.Lock()
		l.segs = l.segs[1:]
		l.segGen.Add(1)
		l.segMu.Unlock()
		removed = append(removed, path)
		if err := l.fs.SyncDir(l.dir); err != nil {
			return removed, fmt.Errorf("kvtool/segment: fsync directory %s: %w", l.dir, err)
		}
	}
}

// droppable returns the oldest segment if it is sealed and wholly below
// index. Only DropBefore removes segments, under dropMu, and rotation only
// appends, so the answer stays true until DropBefore acts on it.
func (l *Log) droppable(index uint64) (string, bool) {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	if len(l.segs) < 2 || l.segs[0].info.LastIndex >= index {
		return "", false
	}
	return l.segs[0].info.Path, true
}
