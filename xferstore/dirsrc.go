package xferstore

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/vfs"
)

// DirSource is a Source over a data directory no server is running on
// (`kvtool transfer send --data`). It opens the store read-only, holding
// the directory's lock while it sends, and ships a checkpoint of its state
// that it writes to DATA/.transfer/send/<checkpoint name>. The file is
// kept until Cleanup, so a sender that restarts offers the same snapshot
// and a receiver resumes it. Its log is the WAL on disk, up to the state's
// index, which is all a receiver with an older copy needs.
type DirSource struct {
	fs   vfs.FS
	dir  string
	st   *store.Store
	snap *store.Snapshot
	info *checkpoint.Info
}

// OpenDirSource opens the data directory dir read-only.
func OpenDirSource(fs vfs.FS, dir string) (*DirSource, error) {
	if fs == nil {
		fs = vfs.Default
	}
	st, err := store.Open(store.Options{FS: fs, Dir: dir, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	return &DirSource{fs: fs, dir: dir, st: st, snap: st.Snapshot()}, nil
}

// Close releases the directory.
func (d *DirSource) Close() error { return d.st.Close() }

// transfer.Identity describes the store; its term is the term of its last entry.
func (d *DirSource) Identity() transfer.Identity {
	m := d.st.CurrentManifest()
	return transfer.Identity{StoreID: m.StoreID, Epoch: m.Epoch, Term: d.term(), SegmentSize: m.SegmentSize}
}

// LastIndex is the index of the store's state.
func (d *DirSource) LastIndex() uint64 { return d.snap.Index() }

// term is the term of the entry at the state's index: from the WAL if it
// holds that entry, else from the base checkpoint, else 1.
func (d *DirSource) term() uint64 {
	idx := d.snap.Index()
	if r, err := segment.NewReader(d.fs, walDir(d.dir), idx); err == nil {
		e, err := r.Next()
		r.Close()
		if err == nil && e.Index == idx {
			return e.Term
		}
	}
	if m := d.st.CurrentManifest(); m.Base != nil && m.Base.Index == idx {
		if info, err := checkpoint.ReadInfo(d.fs, filepath.Join(d.dir, format.SnapDir, m.Base.Name)); err == nil {
			return info.Meta.Term
		}
	}
	return 1
}

func (d *DirSource) sendDir() string {
	return filepath.Join(d.dir, format.TransferDir, format.XferSendDir)
}

// Pin pins the checkpoint of the directory's state, writing it if a
// previous run did not leave it.
func (d *DirSource) Pin(ctx context.Context, req transfer.PinRequest) (transfer.Snapshot, error) {
	info, err := d.checkpoint()
	if err != nil {
		return nil, err
	}
	f, err := d.fs.Open(info.Path)
	if err != nil {
		return nil, fmt.Errorf("kvtool/xferstore: %w", err)
	}
	id := format.XferSnapshotID{Index: info.Meta.Index, Term: info.Meta.Term, Checksum: info.Checksum}
	return transfer.FileSnapshot(id, info.Size, f), nil
}

// checkpoint returns the checkpoint of the state in the send directory.
func (d *DirSource) checkpoint() (checkpoint.Info, error) {
	if d.info != nil {
		return *d.info, nil
	}
	path := filepath.Join(d.sendDir(), format.CheckpointName(d.snap.Index()))
	info, err := checkpoint.ReadInfo(d.fs, path)
	if err != nil || info.Meta.Index != d.snap.Index() || info.Meta.StoreID != d.st.StoreID() {
		if info, err = d.writeCheckpoint(path); err != nil {
			return info, err
		}
	}
	d.info = &info
	return info, nil
}

// writeCheckpoint replaces whatever the send directory holds with a
// checkpoint of the state.
func (d *DirSource) writeCheckpoint(path string) (checkpoint.Info, error) {
	if err := clearDir(d.fs, d.sendDir()); err != nil {
		return checkpoint.Info{}, err
	}
	if err := mkdirDurable(d.fs, d.sendDir()); err != nil {
		return checkpoint.Info{}, err
	}
	m := d.st.CurrentManifest()
	meta := checkpoint.Meta{StoreID: m.StoreID, Index: d.snap.Index(), Term: d.term(), Shards: m.Shards}
	src := checkpoint.SourceFunc(func(fn func(string, []byte) bool) { d.snap.Scan(store.ScanOptions{}, fn) })
	info, err := checkpoint.WriteFile(d.fs, path, meta, src, checkpoint.Options{})
	if err != nil {
		return info, fmt.Errorf("kvtool/xferstore: checkpoint %s: %w", d.dir, err)
	}
	return info, nil
}

// Cleanup removes the checkpoint written for sending (call it once the
// receiver confirmed).
func (d *DirSource) Cleanup() error {
	d.info = nil
	if err := clearDir(d.fs, d.sendDir()); err != nil {
		return err
	}
	if err := d.fs.Remove(d.sendDir()); err != nil && !vfs.IsNotExist(err) {
		return fmt.Errorf("kvtool/xferstore: %w", err)
	}
	return syncDir(d.fs, filepath.Dir(d.sendDir()))
}

// PinLog serves a receiver whose copy ends at after from the WAL on disk.
func (d *DirSource) PinLog(ctx context.Context, peer string, after uint64) (transfer.Snapshot, error) {
	if after > d.snap.Index() {
		return nil, fmt.Errorf("%w: %s's log runs to %d, past this store's %d: the two histories differ",
			transfer.ErrStoreMismatch, peer, after, d.snap.Index())
	}
	if after < d.snap.Index() {
		if _, err := d.walEntry(after + 1); err != nil {
			return nil, fmt.Errorf("%w: %v", transfer.ErrTooFarBehind, err)
		}
	}
	return transfer.FileSnapshot(format.XferSnapshotID{Index: after}, 0, nil), nil
}

// walEntry checks that the WAL on disk holds entry idx.
func (d *DirSource) walEntry(idx uint64) (segment.Entry, error) {
	r, err := segment.NewReader(d.fs, walDir(d.dir), idx)
	if err != nil {
		return segment.Entry{}, err
	}
	defer r.Close()
	e, err := r.Next()
	if err == nil && e.Index != idx {
		err = fmt.Errorf("the WAL of %s starts at entry %d, entry %d is needed", d.dir, e.Index, idx)
	}
	return e, err
}

// transfer.Tail reads the WAL on disk from from through the state's index.
func (d *DirSource) Tail(ctx context.Context, from uint64) (transfer.Tail, error) {
	return transfer.WALTail(d.fs, d.dir, from, d.snap.Index())
}
