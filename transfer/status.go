package transfer

import (
	"errors"
	"path/filepath"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/vfs"
)

// LocalStatus is a data directory's transfer state, as ReadLocalStatus
// finds it.
type LocalStatus struct {
	DataDir  string `json:"data_dir"`
	Complete bool   `json:"complete"` // the directory holds a store (a manifest)
	StoreID  string `json:"store_id,omitempty"`
	// The partial snapshot being received, if any.
	Receiving  bool   `json:"receiving"`
	Snapshot   string `json:"snapshot,omitempty"`
	Chunks     uint64 `json:"chunks"`
	ChunksDone uint64 `json:"chunks_done"` // recorded as verified and durable
	Bytes      int64  `json:"bytes"`
	BytesDone  int64  `json:"bytes_done"`
	TailIndex  uint64 `json:"tail_index"` // last WAL entry spilled so far
	Verified   bool   `json:"verified"`   // the whole snapshot verified; cutover pending
	// SendCheckpoint is the checkpoint an offline sender keeps for a resume.
	SendCheckpoint string `json:"send_checkpoint,omitempty"`
	// SourceAPI is the HTTP API of the source the directory received from,
	// if its sender said (ReadSourceAPI).
	SourceAPI string `json:"source_api,omitempty"`
}

// ReadLocalStatus describes the transfer state of data directory dir. It
// only reads: it takes no lock and repairs nothing.
func ReadLocalStatus(fs vfs.FS, dir string) (*LocalStatus, error) {
	st := &LocalStatus{DataDir: dir}
	m, err := manifest.Load(fs, dir)
	switch {
	case err == nil:
		st.Complete, st.StoreID = true, m.StoreID.String()
	case !errors.Is(err, manifest.ErrNotFound):
		return nil, err
	}
	if err := st.readPartial(fs, dir); err != nil {
		return nil, err
	}
	if api, err := ReadSourceAPI(fs, dir); err == nil { // a damaged record only loses the hint
		st.SourceAPI = api
	}
	if names, _ := fs.List(filepath.Join(transferDir(dir), format.XferSendDir)); len(names) > 0 {
		st.SendCheckpoint = filepath.Join(transferDir(dir), format.XferSendDir, names[len(names)-1])
	}
	return st, nil
}

// readPartial fills in the newest partial snapshot's progress.
func (st *LocalStatus) readPartial(fs vfs.FS, dir string) error {
	names, err := fs.List(transferDir(dir))
	if vfs.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	for _, name := range names {
		if _, ok := format.ParseXferSessionDir(name); !ok {
			continue
		}
		p := &partial{fs: fs, dir: dir, sdir: filepath.Join(transferDir(dir), name), above: map[uint64]struct{}{}, sums: map[uint64]uint64{}}
		records, _, err := p.readProgress()
		if err != nil || len(records) == 0 || records[0].sess == nil {
			continue
		}
		p.sess = *records[0].sess
		p.applyRecords(records[1:])
		st.describe(p)
	}
	if st.Receiving {
		if segs, err := segment.List(fs, walDir(dir)); err == nil && len(segs) > 0 {
			st.TailIndex = segs[len(segs)-1].LastIndex
		}
	}
	return nil
}

func (st *LocalStatus) describe(p *partial) {
	s := p.sess
	st.Receiving, st.StoreID, st.Snapshot = true, manifest.StoreID(s.StoreID).String(), s.Snapshot.String()
	st.Chunks, st.ChunksDone, st.Bytes = s.ChunkCount, p.firstMissing, int64(s.TotalSize)
	st.BytesDone = int64(min(p.firstMissing*uint64(s.ChunkSize), s.TotalSize))
	st.TailIndex, st.Verified = s.Snapshot.Index, p.final != nil
}
