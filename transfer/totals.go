package transfer

import (
	"time"

	"github.com/kvtool/kvtool/format"
)

// Both ends of a session count the snapshot's bytes alike, from what both
// know exactly: the session frame (chunk size, total size, the chunk the
// session resumes at) and the receiver's durable prefix (the sender knows
// it from the receiver's credits). So the two ends of a resumed transfer
// report the same totals: BytesDone for the whole transfer, SessionBytes
// for this session alone, and a Rate over SessionBytes, never over bytes
// an earlier session moved.

// totals are a session's byte counts.
type totals struct {
	done    int64 // snapshot bytes durable at the receiver: the whole transfer
	session int64 // of those, the ones this session moved
}

// sessionTotals are the counts once the receiver holds the chunks below
// firstMissing durably.
func sessionTotals(sess format.XferSession, firstMissing uint64) totals {
	size := sess.TotalSize
	done := min(firstMissing*uint64(sess.ChunkSize), size)
	base := min(sess.ResumeFrom*uint64(sess.ChunkSize), done)
	return totals{done: int64(done), session: int64(done - base)}
}

// rate is n bytes per second since start.
func rate(n int64, start time.Time) int64 {
	if start.IsZero() {
		return 0
	}
	return int64(float64(n) / max(time.Since(start), time.Millisecond).Seconds())
}

// finish fills in the result's totals.
func (s *sender) finishTotals() {
	s.mu.Lock()
	first, done := s.credit.FirstMissing, s.done
	s.mu.Unlock()
	switch {
	case done || s.oneWay && s.finalSent:
		first = s.sess.ChunkCount // the receiver cut over: it holds every chunk
	case s.oneWay:
		first = s.next // no credits: what was written
	}
	t := sessionTotals(s.sess, first)
	s.res.BytesDone, s.res.SessionBytes, s.res.Rate = t.done, t.session, rate(t.session, s.started)
}

// receiverTotals are the receiver's counts now.
func (rv *receiver) totals() totals {
	switch {
	case rv.res.CutOver || rv.res.TailOnly:
		return sessionTotals(rv.sess, rv.sess.ChunkCount)
	case rv.p != nil:
		return sessionTotals(rv.sess, rv.p.firstMissing)
	}
	return totals{}
}

func (rv *receiver) finishTotals() {
	t := rv.totals()
	rv.res.BytesDone, rv.res.SessionBytes, rv.res.Rate = t.done, t.session, rate(t.session, rv.started)
}
