package main

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/vfs"
)

// Progress of the commands whose library calls report none (replay, and
// the maintenance steps on --data: opening the store, then writing the
// checkpoint or delta): the bytes they read and write through the file
// system, counted by a wrapper, against what the data directory says they
// will read and an estimate of what they will write.

// countingFS counts the bytes read from and written to its files.
type countingFS struct {
	vfs.FS
	n atomic.Int64
}

func (c *countingFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, n: &c.n}, nil
}

func (c *countingFS) Create(name string) (vfs.File, error) { return c.wrap(c.FS.Create(name)) }
func (c *countingFS) Open(name string) (vfs.File, error)   { return c.wrap(c.FS.Open(name)) }
func (c *countingFS) OpenReadWrite(name string) (vfs.File, error) {
	return c.wrap(c.FS.OpenReadWrite(name))
}

type countingFile struct {
	vfs.File
	n *atomic.Int64
}

func (f *countingFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.n.Add(int64(n))
	return n, err
}

func (f *countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.n.Add(int64(n))
	return n, err
}

func (f *countingFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.n.Add(int64(n))
	return n, err
}

func (f *countingFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.n.Add(int64(n))
	return n, err
}

// ioProgress draws the bytes moved through its FS against a total.
type ioProgress struct {
	fs    *countingFS
	total int64
	pr    *progress
	stop  chan struct{}
	once  sync.Once
	done  chan struct{}
}

// progressEvery is how often an I/O progress bar is redrawn.
const progressEvery = 100 * time.Millisecond

// startIOProgress starts a bar labelled label for a command that will move
// about total bytes through fsys, and returns the file system to give it.
// Without progress (a pipe, --quiet) it returns fsys itself.
func startIOProgress(cCtx *cli.Context, label string, fsys vfs.FS, total int64) (vfs.FS, *ioProgress) {
	if !showProgress(cCtx) {
		return fsys, &ioProgress{}
	}
	ip := &ioProgress{fs: &countingFS{FS: fsys}, total: total, pr: startProgress(cCtx, label, total), stop: make(chan struct{}), done: make(chan struct{})}
	go ip.run(total)
	return ip.fs, ip
}

func (ip *ioProgress) run(total int64) {
	defer close(ip.done)
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		// The total is an estimate: never show the end before it is.
		ip.pr.Update(min(ip.fs.n.Load(), max(total-1, 0)), total)
		select {
		case <-ip.stop:
			return
		case <-t.C:
		}
	}
}

// Done removes the bar; call it once the work ended, before printing.
func (ip *ioProgress) Done() {
	if ip.fs == nil {
		return
	}
	ip.once.Do(func() {
		close(ip.stop)
		<-ip.done
		n := ip.fs.n.Load()
		ip.pr.Update(n, max(n, ip.total))
		ip.pr.Done()
	})
}

// dirWork estimates what opening (or replaying) data reads: the files
// recovery reads (segments whole, to their preallocated end, and the
// snapshot files the manifest names), and what a new checkpoint of its
// state writes (about the size of its base and deltas).
func dirWork(fsys vfs.FS, data string) (read, write int64) {
	size := func(path string) int64 {
		if fi, err := fsys.Stat(path); err == nil {
			return fi.Size()
		}
		return 0
	}
	walDir := filepath.Join(data, format.WALDir)
	if names, err := fsys.List(walDir); err == nil {
		for _, n := range names {
			if _, ok := format.ParseSegmentName(n); ok {
				read += size(filepath.Join(walDir, n))
			}
		}
	}
	m, err := manifest.Load(fsys, data)
	if err != nil {
		return read, 0
	}
	if m.Base != nil {
		write += m.Base.Size
	}
	for _, d := range m.Deltas {
		write += d.Size
	}
	return read + write, write
}
