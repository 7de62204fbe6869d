package transfer

import (
	"fmt"
	"path/filepath"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/table"
)

// checkFinal checks a final frame (at offset off of the stream from peer)
// against the session.
func (p *partial) checkFinal(f format.XferFinal, peer string, off int64) error {
	s := p.sess
	if f.SnapIndex != s.Snapshot.Index || f.TotalSize != s.TotalSize || f.ChunkCount != s.ChunkCount {
		return format.Corruptf(peer, off, "final frame describes snapshot index %d, %d bytes, %d chunks; the session said %d, %d, %d",
			f.SnapIndex, f.TotalSize, f.ChunkCount, s.Snapshot.Index, s.TotalSize, s.ChunkCount)
	}
	return nil
}

// install verifies the assembled snapshot and cuts the data directory over
// to it, returning the index the directory then opens at. Each step is
// durable before the next:
//
//  1. every chunk recorded, the tail through f.TailEnd durable;
//  2. the part file: its size, its chunks' checksums against f.FileSum,
//     checkpoint.Verify (every block and the footer's whole-file checksum),
//     and its header against the snapshot ID and store;
//  3. the final recorded in PROGRESS (a restart resumes from here with
//     nothing left to receive);
//  4. the log closed, the part renamed to DATA/snap/<checkpoint name>, both
//     directories synced;
//  5. the manifest published: the commit point. Before it the directory has
//     no manifest and no store opens it; after it store.Open recovers the
//     checkpoint and the WAL tail;
//  6. the session directory removed (garbage from then on).
func (p *partial) install(f format.XferFinal, peer string, blocks func(checkpoint.Info) func(*format.Block) error) (uint64, error) {
	if err := p.ready(f, peer); err != nil {
		return 0, err
	}
	if p.final == nil {
		if err := p.verifyPart(f, peer, blocks); err != nil {
			return 0, err
		}
		if err := p.recordFinal(f); err != nil {
			return 0, err
		}
	}
	last := p.log.LastIndex()
	if err := p.close(); err != nil {
		return 0, fmt.Errorf("kvtool/transfer: close the WAL: %w", err)
	}
	info, err := p.moveIntoSnap()
	if err != nil {
		return 0, err
	}
	if err := p.publish(info); err != nil {
		return 0, err
	}
	return last, removeTree(p.fs, p.sdir)
}

// ready checks step 1: everything received is durable.
func (p *partial) ready(f format.XferFinal, peer string) error {
	if err := p.flush(); err != nil {
		return err
	}
	if p.firstMissing != p.sess.ChunkCount && p.final == nil {
		return protocolf(peer, "final frame before chunk %d of %d", p.firstMissing, p.sess.ChunkCount)
	}
	if err := p.waitTail(); err != nil {
		return err
	}
	if last := p.log.LastIndex(); last < f.TailEnd {
		return protocolf(peer, "final frame says the tail ends at %d, but it ended at %d", f.TailEnd, last)
	}
	return nil
}

// verifyPart checks step 2, handing the decoded blocks to blocks if set
// (ReceiveOptions.CheckpointBlocks).
func (p *partial) verifyPart(f format.XferFinal, peer string, blocks func(checkpoint.Info) func(*format.Block) error) error {
	fi, err := p.fs.Stat(p.partPath())
	if err != nil {
		return fmt.Errorf("kvtool/transfer: %w", err)
	}
	sum, all := p.fileSum()
	switch {
	case uint64(fi.Size()) != p.sess.TotalSize:
		return format.Corruptf(p.partPath(), fi.Size(), "assembled snapshot is %d bytes, the session said %d", fi.Size(), p.sess.TotalSize)
	case !all || sum != f.FileSum:
		return format.Corruptf(p.partPath(), 0, "the chunks' checksums sum to %016x, %s sent %016x", sum, peer, f.FileSum)
	}
	var opts table.VerifyOptions
	if blocks != nil {
		if info, err := checkpoint.ReadInfo(p.fs, p.partPath()); err == nil { // else Verify reports it
			opts.Block = blocks(info)
		}
	}
	rep, err := checkpoint.Verify(p.fs, p.partPath(), opts)
	if err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		return err
	}
	info, err := checkpoint.ReadInfo(p.fs, p.partPath())
	if err != nil {
		return err
	}
	return p.checkInfo(info)
}

// checkInfo compares a checkpoint's header and footer with the session.
func (p *partial) checkInfo(info checkpoint.Info) error {
	m, id := info.Meta, p.sess.Snapshot
	if [16]byte(m.StoreID) != p.sess.StoreID || m.Index != id.Index || m.Term != id.Term || info.Checksum != id.Checksum {
		return format.Corruptf(info.Path, 0, "checkpoint is of store %s at index %d term %d checksum %016x; the session announced %s",
			m.StoreID, m.Index, m.Term, info.Checksum, id)
	}
	return nil
}

// moveIntoSnap does step 4's rename (unless an interrupted cutover did it)
// and describes the installed checkpoint.
func (p *partial) moveIntoSnap() (checkpoint.Info, error) {
	snap := filepath.Join(p.dir, format.SnapDir)
	dst := filepath.Join(snap, format.CheckpointName(p.sess.Snapshot.Index))
	if _, err := p.fs.Stat(p.partPath()); err == nil {
		if err := mkdirDurable(p.fs, snap); err != nil {
			return checkpoint.Info{}, err
		}
		if err := format.RenameDurable(p.fs, p.partPath(), dst); err != nil {
			return checkpoint.Info{}, fmt.Errorf("kvtool/transfer: install the snapshot: %w", err)
		}
	}
	info, err := checkpoint.ReadInfo(p.fs, dst)
	if err != nil {
		return info, err
	}
	return info, p.checkInfo(info)
}

// publish does step 5.
func (p *partial) publish(info checkpoint.Info) error {
	ref := info.Ref()
	m := &manifest.Manifest{
		StoreID: manifest.StoreID(p.sess.StoreID), Shards: info.Meta.Shards, Epoch: p.sess.Epoch,
		SegmentSize: segmentSize(p.sess), Base: &ref, WALFirstIndex: p.sess.Snapshot.Index + 1,
	}
	if err := manifest.Publish(p.fs, p.dir, m); err != nil {
		return fmt.Errorf("kvtool/transfer: cut over: %w", err)
	}
	return nil
}
