// Package benchbase holds the baselines kvtool's benchmarks compare
// against, in one place so that every benchmark measures the same thing:
// the simplest group commit on a preallocated file, and a counter of
// fsyncs with the records and time each took. Benchmarks only.
package benchbase

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/vfs"
)

// SyncCounter sums fsyncs, their records and their time.
type SyncCounter struct{ n, recs, nanos atomic.Int64 }

// Add counts one fsync that made recs records durable in d.
func (c *SyncCounter) Add(recs int, d time.Duration) {
	c.n.Add(1)
	c.recs.Add(int64(recs))
	c.nanos.Add(int64(d))
}

// Report reports records per fsync and µs per fsync, named name-….
func (c *SyncCounter) Report(b *testing.B, name string) {
	n := float64(max(1, c.n.Load()))
	b.ReportMetric(float64(c.recs.Load())/n, name+"-recs/fsync")
	b.ReportMetric(float64(c.nanos.Load())/n/1e3, name+"-fsync-µs")
}

// GroupCommit is the simplest group commit: one goroutine takes every
// waiting request, writes their records in one write at the end of a
// preallocated file (wrapping to its start when full), fdatasyncs, and
// answers them.
type GroupCommit struct {
	b    testing.TB
	rec  []byte
	reqs chan chan struct{}
	done chan struct{}
	pool sync.Pool
}

// groupFileSize is the baseline file's preallocated size.
const groupFileSize = 64 << 20

// StartGroupCommit starts a group commit of rec-sized records on a new
// file at path (removed by Stop), counting its fsyncs in syncs.
func StartGroupCommit(b testing.TB, path string, rec []byte, syncs *SyncCounter) *GroupCommit {
	f, err := vfs.Default.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Preallocate(groupFileSize); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	g := &GroupCommit{b: b, rec: rec, reqs: make(chan chan struct{}, 1024), done: make(chan struct{})}
	go g.run(f, path, syncs)
	return g
}

func (g *GroupCommit) run(f vfs.File, path string, syncs *SyncCounter) {
	defer close(g.done)
	defer os.Remove(path)
	defer f.Close()
	var buf []byte
	var batch []chan struct{}
	off := int64(0)
	for r := range g.reqs {
		batch = append(batch[:0], r)
	drain:
		for {
			select {
			case r, ok := <-g.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		buf = buf[:0]
		for range batch {
			buf = append(buf, g.rec...)
		}
		if off+int64(len(buf)) > groupFileSize {
			off = 0
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			g.b.Error(err)
		}
		t0 := time.Now()
		if err := f.Sync(); err != nil {
			g.b.Error(err)
		}
		syncs.Add(len(batch), time.Since(t0))
		off += int64(len(buf))
		for _, d := range batch {
			d <- struct{}{}
		}
	}
}

// Append commits one record and returns once it is durable.
func (g *GroupCommit) Append() {
	d, _ := g.pool.Get().(chan struct{})
	if d == nil {
		d = make(chan struct{}, 1)
	}
	g.reqs <- d
	<-d
	g.pool.Put(d)
}

// Stop ends the group commit once the requests sent are answered, and
// removes its file.
func (g *GroupCommit) Stop() {
	close(g.reqs)
	<-g.done
}
