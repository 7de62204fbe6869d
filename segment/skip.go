package segment

import "fmt"

// SkipTo makes next the index of the log's next record, leaving out every
// index between the last record and next: it seals the active segment with
// a seal naming next and starts a new segment there, as Rotate does (the
// header chain stays linked), and returns once that is durable. It is for
// a replica whose whole state was replaced by a snapshot at next-1 (a
// cluster member installing a raft snapshot): the records before next
// describe a past the store no longer builds on, and the caller drops them
// with DropBefore(next) right after. No reader may read across the skip;
// the sealed segments before it report next-1 as their last index once
// reopened. The caller must not enqueue records while SkipTo runs.
func (l *Log) SkipTo(next uint64) error {
	l.mu.Lock()
	if err := l.stateErr(); err != nil {
		l.mu.Unlock()
		return err
	}
	if next <= l.next {
		cur := l.next
		l.mu.Unlock()
		return fmt.Errorf("kvtool/segment: skip %s to index %d: the log's next index is already %d", l.dir, next, cur)
	}
	b := l.cur
	b.rotate, b.skipTo = true, next
	l.mu.Unlock()
	l.interrupt()
	<-b.done
	if b.err != nil {
		return b.err
	}
	if b.rotErr != nil {
		return b.rotErr
	}
	l.mu.Lock()
	l.next = next
	l.last.Store(next - 1)
	l.durable.Store(next - 1)
	l.mu.Unlock()
	return nil
}
