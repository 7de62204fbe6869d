package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// The building blocks of a Source over files: a checkpoint file as the
// snapshot, the WAL of a data directory on disk as the tail. A source over
// an offline data directory (package xferstore) is made of them.

// FileSnapshot returns a pinned snapshot of the checkpoint file f, whose
// ID is id and size size; Release closes f. With a nil f it is a log-only
// snapshot (PinLog): size 0, and ReadAt returns io.EOF. Retain does
// nothing: nothing compacts the file while it is read.
func FileSnapshot(id format.XferSnapshotID, size int64, f vfs.File) Snapshot {
	return &fileSnap{id: id, size: size, f: f}
}

// WALTail reads the WAL of the data directory dir from index from through
// last, then returns io.EOF; a missing entry is ErrTooFarBehind. From past
// last, it is empty.
func WALTail(fs vfs.FS, dir string, from, last uint64) (Tail, error) {
	if from > last {
		return dirTail{}, nil
	}
	r, err := segment.NewReader(fs, walDir(dir), from)
	if err != nil {
		return nil, err
	}
	return &walTail{r: r, next: from, last: last}, nil
}

// fileSnap is a pinned checkpoint file (or, with no file, just the log
// after id.Index).
type fileSnap struct {
	id   format.XferSnapshotID
	size int64
	f    vfs.File
}

func (p *fileSnap) ID() format.XferSnapshotID { return p.id }
func (p *fileSnap) Size() int64               { return p.size }
func (p *fileSnap) Retain(uint64, bool)       {}

func (p *fileSnap) ReadAt(b []byte, off int64) (int, error) {
	if p.f == nil {
		return 0, io.EOF
	}
	return p.f.ReadAt(b, off)
}

func (p *fileSnap) Release(bool) {
	if p.f != nil {
		p.f.Close()
	}
}

// dirTail is an empty tail.
type dirTail struct{}

func (dirTail) Next(context.Context) (segment.Entry, error) { return segment.Entry{}, io.EOF }
func (dirTail) Close() error                                { return nil }

// walTail reads a WAL on disk through last.
type walTail struct {
	r    *segment.Reader
	next uint64
	last uint64
}

func (t *walTail) Next(ctx context.Context) (segment.Entry, error) {
	if t.next > t.last {
		return segment.Entry{}, io.EOF
	}
	e, err := t.r.Next()
	if errors.Is(err, io.EOF) || err == nil && e.Index != t.next {
		return e, fmt.Errorf("%w: the WAL has no entry %d", ErrTooFarBehind, t.next)
	} else if err != nil {
		return e, err
	}
	t.next++
	return e, nil
}

func (t *walTail) Close() error { return t.r.Close() }
