package transfer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/cespare/xxhash/v2"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

// VerifyOptions configure VerifyStream.
type VerifyOptions struct {
	// Secret, if set, checks the session's proof and the stream's MAC.
	Secret Secret
	// TempDir, if set, is where the snapshot is assembled in a temporary
	// file (removed afterwards) to verify it as a checkpoint, block by
	// block. FS is the file system it is on (default vfs.Default).
	TempDir string
	FS      vfs.FS
	// Progress, if set, is called with the stream bytes read so far.
	Progress func(read int64)
}

// StreamReport is what VerifyStream found in a saved one-way stream.
type StreamReport struct {
	Path              string                `json:"path"`
	Bytes             int64                 `json:"bytes"` // stream bytes read
	StoreID           string                `json:"store_id,omitempty"`
	Epoch             uint64                `json:"epoch"`
	Term              uint64                `json:"term"`
	Snapshot          format.XferSnapshotID `json:"-"`
	SnapshotID        string                `json:"snapshot,omitempty"`
	Size              int64                 `json:"snapshot_bytes"`
	Chunks            uint64                `json:"chunks"`
	ChunksOK          uint64                `json:"chunks_ok"`
	TailFrom          uint64                `json:"tail_from"`
	TailEnd           uint64                `json:"tail_end"` // last tail entry found
	Entries           int64                 `json:"entries"`
	Final             bool                  `json:"final"`              // the final frame was found
	MACChecked        bool                  `json:"mac_checked"`        // with a secret
	CheckpointChecked bool                  `json:"checkpoint_checked"` // with a TempDir
	// Problems lists every fault found, with its stream offset. Damage to
	// a frame's framing ends the walk (nothing after it can be trusted);
	// a bad chunk or a tail gap does not.
	Problems []*format.CorruptionError `json:"-"`
}

// OK reports whether no problem was found.
func (r *StreamReport) OK() bool { return len(r.Problems) == 0 }

// Err returns nil if no problem was found, else an error matching
// format.ErrCorruption naming the first problem and the count.
func (r *StreamReport) Err() error {
	switch len(r.Problems) {
	case 0:
		return nil
	case 1:
		return r.Problems[0]
	}
	return fmt.Errorf("%w (and %d more problems)", r.Problems[0], len(r.Problems)-1)
}

func (r *StreamReport) addf(off int64, f string, args ...any) {
	r.Problems = append(r.Problems, format.Corruptf(r.Path, off, f, args...))
}

// add records err if it is corruption, and returns any other error.
func (r *StreamReport) add(err error) error {
	if ce := format.AsCorruption(err); ce != nil {
		r.Problems = append(r.Problems, ce)
		return nil
	}
	return err
}

// VerifyStream checks a saved one-way stream (WriteStream) read from r,
// named path in the report: its header and session, every frame's
// checksum, every chunk's place and checksum, the whole snapshot's
// checksum, the tail's continuity, the final frame, and (with a secret)
// the session proof and MAC; with a TempDir also the snapshot as a
// checkpoint. It reports every problem it can; the error is for what
// stops verification itself (a read error).
func VerifyStream(r io.Reader, path string, opts VerifyOptions) (*StreamReport, error) {
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	v := &streamVerifier{opts: opts, rep: &StreamReport{Path: path}, fr: newFrameReader(r, path, false), digest: format.NewXferFileSum()}
	if !opts.Secret.IsZero() {
		v.fr.mac = opts.Secret.newMAC(labelOneWayStream)
	}
	err := v.run()
	v.cleanup()
	v.rep.Bytes = v.fr.off
	return v.rep, err
}

type streamVerifier struct {
	opts     VerifyOptions
	rep      *StreamReport
	fr       *frameReader
	sess     format.XferSession
	digest   *format.XferFileSum
	nextSeq  uint64
	nextTail uint64
	badChunk bool
	tmp      vfs.File
	zbuf     []byte
}

func (v *streamVerifier) run() error {
	if err := v.fr.header(format.XferSender, format.XferOneWay); err != nil {
		return v.fail(err)
	}
	if err := v.session(); err != nil || !v.rep.OK() && v.sess.ChunkSize == 0 {
		return err
	}
	for !v.rep.Final {
		f, err := v.fr.next()
		if err == io.EOF {
			v.rep.addf(v.fr.off, "stream ends before its final frame")
			return nil
		} else if err != nil {
			return v.fail(err)
		}
		if err := v.frame(f.Type, f.Offset, f.Payload); err != nil {
			return err
		}
		v.progress()
	}
	return v.trailing()
}

// fail records corruption (the walk ends there) or returns another error.
func (v *streamVerifier) fail(err error) error {
	if errors.Is(err, ErrProtocol) {
		v.rep.addf(v.fr.off, "%v", err)
		return nil
	}
	return v.rep.add(err)
}

func (v *streamVerifier) session() error {
	f, err := v.fr.next()
	off := f.Offset
	if err == nil {
		v.sess, err = format.DecodeXferSession(f.Payload, v.rep.Path, off)
	}
	if err == io.EOF {
		v.rep.addf(v.fr.off, "stream ends before its session header")
		return nil
	} else if err != nil {
		return v.fail(err)
	}
	s := v.sess
	v.rep.StoreID, v.rep.Epoch, v.rep.Term = manifest.StoreID(s.StoreID).String(), s.Epoch, s.Term
	v.rep.Snapshot, v.rep.SnapshotID, v.rep.Size, v.rep.Chunks = s.Snapshot, s.Snapshot.String(), int64(s.TotalSize), s.ChunkCount
	v.rep.TailFrom, v.rep.TailEnd, v.nextTail = s.TailFrom, s.TailFrom-1, s.TailFrom
	switch {
	case s.Version != format.XferProtocol:
		v.rep.addf(off, "transfer protocol version %d, this kvtool reads %d", s.Version, format.XferProtocol)
	case s.Flags != 0 || s.ResumeFrom != 0:
		v.rep.addf(off, "one-way session with flags %#x resuming at chunk %d", s.Flags, s.ResumeFrom)
	case !v.opts.Secret.IsZero() && !validProof(s.Proof, v.opts.Secret.sessionProof(s)):
		v.rep.addf(off, "session header is not signed with this secret")
	}
	if v.opts.TempDir != "" {
		return v.openTemp()
	}
	return nil
}

func (v *streamVerifier) frame(t format.FrameType, off int64, p []byte) error {
	switch t {
	case format.FrameXferChunk:
		return v.chunk(off, p)
	case format.FrameXferTail:
		v.tail(off, p)
	case format.FrameXferFinal:
		v.final(off, p)
	default:
		v.rep.addf(off, "frame type %d does not belong in a one-way stream", t)
	}
	return nil
}

// chunk checks one chunk; damaged data is reported and the walk goes on,
// since the header says how much data to skip.
func (v *streamVerifier) chunk(off int64, p []byte) error {
	c, err := format.DecodeXferChunk(p, v.rep.Path, off)
	if err != nil {
		return v.fail(err)
	}
	s := v.sess
	if c.WireLen > s.ChunkSize {
		v.rep.addf(off, "chunk %d has %d wire bytes, more than the chunk size %d", c.Seq, c.WireLen, s.ChunkSize)
		v.rep.Final = true // the data length cannot be trusted: stop here
		return nil
	}
	wire, err := v.fr.chunkData(int(c.WireLen))
	if err != nil {
		return v.fail(err)
	}
	if c.Seq != v.nextSeq || c.Offset != c.Seq*uint64(s.ChunkSize) || uint64(c.RawLen) != min(uint64(s.ChunkSize), s.TotalSize-min(c.Offset, s.TotalSize)) {
		v.rep.addf(off, "chunk %d at snapshot offset %d of %d bytes, want chunk %d at offset %d", c.Seq, c.Offset, c.RawLen, v.nextSeq, v.nextSeq*uint64(s.ChunkSize))
		v.badChunk = true
	}
	v.nextSeq = c.Seq + 1
	raw := wire
	if c.Codec == format.CodecZstd {
		if raw, err = format.DecompressXferChunk(v.zbuf, wire, int(c.RawLen)); err != nil {
			v.rep.addf(off, "chunk %d does not decompress: %v", c.Seq, err)
			v.badChunk = true
			return nil
		}
		v.zbuf = raw
	}
	if xxhash.Sum64(raw) != c.Sum {
		v.rep.addf(off, "chunk %d (snapshot offset %d) fails its xxh64 checksum", c.Seq, c.Offset)
		v.badChunk = true
		return nil
	}
	v.rep.ChunksOK++
	v.digest.Add(c.Sum)
	return v.writeTemp(raw, c.Offset)
}

func (v *streamVerifier) tail(off int64, p []byte) {
	t, err := format.DecodeXferTail(p, v.rep.Path, off)
	if err != nil {
		v.rep.add(err)
		return
	}
	if t.Index != v.nextTail {
		v.rep.addf(off, "tail entry %d, want %d", t.Index, v.nextTail)
	}
	v.nextTail = t.Index + 1
	v.rep.Entries++
	v.rep.TailEnd = t.Index
}

func (v *streamVerifier) final(off int64, p []byte) {
	v.rep.Final = true
	f, err := format.DecodeXferFinal(p, v.rep.Path, off)
	if err != nil {
		v.rep.add(err)
		return
	}
	s := v.sess
	switch {
	case f.SnapIndex != s.Snapshot.Index || f.TotalSize != s.TotalSize || f.ChunkCount != s.ChunkCount:
		v.rep.addf(off, "final frame describes index %d, %d bytes, %d chunks; the session said %d, %d, %d",
			f.SnapIndex, f.TotalSize, f.ChunkCount, s.Snapshot.Index, s.TotalSize, s.ChunkCount)
	case v.nextSeq != s.ChunkCount:
		v.rep.addf(off, "final frame after %d of %d chunks", v.nextSeq, s.ChunkCount)
	case !v.badChunk && f.FileSum != v.digest.Sum64():
		v.rep.addf(off, "the chunks' checksums sum to %016x, the final frame says %016x", v.digest.Sum64(), f.FileSum)
	case f.TailEnd != v.rep.TailEnd:
		v.rep.addf(off, "final frame says the tail ends at %d, it ended at %d", f.TailEnd, v.rep.TailEnd)
	}
	v.checkMAC(f, off)
	v.checkSnapshot()
}

func (v *streamVerifier) checkMAC(f format.XferFinal, off int64) {
	if v.fr.mac == nil {
		return
	}
	v.rep.MACChecked = true
	var want [format.XferMACSize]byte
	copy(want[:], v.fr.mac.Sum(nil))
	if !validProof(f.MAC, want) {
		v.rep.addf(off+format.FrameHeaderSize+format.XferFinalMACOffset, "the stream's MAC does not match (wrong secret, or the stream was altered)")
	}
}

// trailing checks that nothing follows the final frame.
func (v *streamVerifier) trailing() error {
	var b [1]byte
	n, err := v.fr.br.Read(b[:])
	if n > 0 {
		v.rep.addf(v.fr.off, "bytes after the final frame")
		return nil
	}
	if err != nil && err != io.EOF {
		return fmt.Errorf("%s: read at offset %d: %w", v.rep.Path, v.fr.off, err)
	}
	return nil
}

func (v *streamVerifier) progress() {
	if v.opts.Progress != nil {
		v.opts.Progress(v.fr.off)
	}
}

// openTemp creates the file the snapshot is assembled in.
func (v *streamVerifier) openTemp() error {
	n := newNonce()
	path := filepath.Join(v.opts.TempDir, format.TempName("verify.ckpt", binary.LittleEndian.Uint64(n[:])))
	f, err := v.opts.FS.Create(path)
	if err != nil {
		return fmt.Errorf("kvtool/transfer: %w", err)
	}
	v.tmp = f
	return nil
}

func (v *streamVerifier) writeTemp(raw []byte, off uint64) error {
	if v.tmp == nil {
		return nil
	}
	if _, err := v.tmp.WriteAt(raw, int64(off)); err != nil {
		return fmt.Errorf("kvtool/transfer: write %s: %w", v.tmp.Name(), err)
	}
	return nil
}

// checkSnapshot verifies the assembled snapshot as a checkpoint, when every
// chunk was good.
func (v *streamVerifier) checkSnapshot() {
	if v.tmp == nil || v.badChunk || v.nextSeq != v.sess.ChunkCount {
		return
	}
	v.rep.CheckpointChecked = true
	path := v.tmp.Name()
	rep, err := checkpoint.Verify(v.opts.FS, path, table.VerifyOptions{})
	if err != nil {
		v.rep.addf(0, "snapshot: %v", err)
		return
	}
	for _, p := range rep.Problems {
		v.rep.addf(0, "snapshot at offset %d: %s", p.Offset, p.Reason)
	}
	info, err := checkpoint.ReadInfo(v.opts.FS, path)
	if err != nil {
		return // reported by Verify
	}
	if id := v.sess.Snapshot; info.Meta.Index != id.Index || info.Meta.Term != id.Term || info.Checksum != id.Checksum || [16]byte(info.Meta.StoreID) != v.sess.StoreID {
		v.rep.addf(0, "snapshot is of store %s at index %d term %d checksum %016x; the session announced %s",
			info.Meta.StoreID, info.Meta.Index, info.Meta.Term, info.Checksum, id)
	}
}

func (v *streamVerifier) cleanup() {
	if v.tmp != nil {
		v.tmp.Close()
		v.opts.FS.Remove(v.tmp.Name())
	}
}
