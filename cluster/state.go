package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"go.etcd.io/raft/v3/confchange"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// StateName is the raft state file in the raft directory.
const StateName = "STATE"

// maxStateSize bounds the state file read from disk.
const maxStateSize = 1 << 20

// maxMembers bounds each member list of a decoded conf state.
const maxMembers = 4096

// errNoState is wrapped when the raft directory has no state file.
var errNoState = errors.New("kvtool/cluster: no raft state file")

// raftState is what the state file holds: the node's identity, raft's hard
// state (term and vote durably; commit as last written, only a hint), the
// membership in force after entry ConfIndex, and the raft snapshot the log
// starts after (its index and term, and the membership then).
type raftState struct {
	ClusterID uint64
	NodeID    uint64
	Term      uint64
	Vote      uint64
	Commit    uint64
	ConfIndex uint64
	SnapIndex uint64
	SnapTerm  uint64
	Conf      *pb.ConfState
	SnapConf  *pb.ConfState
}

// encodeState returns the whole state file.
func encodeState(s *raftState) []byte {
	var body []byte
	for _, v := range []uint64{s.ClusterID, s.NodeID, s.Term, s.Vote, s.Commit, s.ConfIndex, s.SnapIndex, s.SnapTerm} {
		body = binary.LittleEndian.AppendUint64(body, v)
	}
	body = appendConf(body, s.Conf)
	body = appendConf(body, s.SnapConf)
	b := format.AppendHeader(nil, format.MagicRaftState, nil)
	return format.AppendFrame(b, format.FrameRaftState, body)
}

// appendConf appends a conf state: auto-leave u8, then voters, learners,
// outgoing voters and next learners, each a u32 count and u64 IDs.
func appendConf(b []byte, cs *pb.ConfState) []byte {
	leave := byte(0)
	if cs.GetAutoLeave() {
		leave = 1
	}
	b = append(b, leave)
	for _, ids := range [][]uint64{cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing(), cs.GetLearnersNext()} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ids)))
		for _, id := range ids {
			b = binary.LittleEndian.AppendUint64(b, id)
		}
	}
	return b
}

// loadState reads the state file of the raft directory dir.
func loadState(fs vfs.FS, dir string) (*raftState, error) {
	path := filepath.Join(dir, StateName)
	f, err := fs.Open(path)
	if vfs.IsNotExist(err) {
		return nil, fmt.Errorf("%w: %s", errNoState, path)
	} else if err != nil {
		return nil, fmt.Errorf("kvtool/cluster: open %s: %w", path, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("kvtool/cluster: size of %s: %w", path, err)
	}
	if size > maxStateSize {
		return nil, format.Corruptf(path, 0, "state file of %d bytes, the limit is %d", size, maxStateSize)
	}
	return decodeState(f, path, size)
}

// decodeState decodes a state file of size bytes read from r. Damage is a
// *format.CorruptionError.
func decodeState(r io.Reader, path string, size int64) (*raftState, error) {
	if _, err := format.ReadHeader(r, path, format.MagicRaftState); err != nil {
		return nil, err
	}
	off := int64(format.HeaderSize(0))
	fr := format.NewFrameReader(r, path, off, size, false)
	f, err := fr.Next()
	if err == io.EOF {
		return nil, format.Corruptf(path, off, "raft state file has no body")
	} else if err != nil {
		return nil, err
	}
	at, body := f.Offset, f.Payload
	if f.Type != format.FrameRaftState {
		return nil, format.Corruptf(path, at, "frame type %d, want the raft state (%d)", f.Type, format.FrameRaftState)
	}
	if _, err := fr.Next(); err != io.EOF {
		return nil, format.Corruptf(path, fr.Offset(), "bytes after the raft state")
	}
	s, err := decodeStateBody(body)
	if err != nil {
		return nil, format.Corruptf(path, at, "raft state: %v", err)
	}
	return s, nil
}

func decodeStateBody(b []byte) (*raftState, error) {
	d := &decoder{b: b}
	s := &raftState{}
	for _, p := range []*uint64{&s.ClusterID, &s.NodeID, &s.Term, &s.Vote, &s.Commit, &s.ConfIndex, &s.SnapIndex, &s.SnapTerm} {
		*p = d.u64()
	}
	s.Conf, s.SnapConf = d.conf(), d.conf()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err == nil && (s.ClusterID == 0 || s.NodeID == 0) {
		d.err = errors.New("cluster ID or node ID is zero")
	}
	if d.err == nil {
		if err := restorableConf(s.Conf); err != nil {
			d.err = fmt.Errorf("membership: %w", err)
		} else if err := restorableConf(s.SnapConf); err != nil {
			d.err = fmt.Errorf("snapshot's membership: %w", err)
		}
	}
	return s, d.err
}

// restorableConf returns why raft cannot restore cs (a voter that is also a
// learner, next learners outside a joint change, ...), or nil: raft
// panics on such a ConfState at start, and a peer sent it in a snapshot
// would too. This is raft's own check (newRaft's Restore, then the
// equivalence it asserts).
func restorableConf(cs *pb.ConfState) error {
	trk := tracker.MakeProgressTracker(1, 0)
	cfg, prs, err := confchange.Restore(confchange.Changer{Tracker: trk, LastIndex: 1}, cs)
	if err != nil {
		return err
	}
	trk.Config, trk.Progress = cfg, prs
	return cs.Equivalent(trk.ConfState())
}

// decoder reads little-endian fields; the first error is sticky.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.err = fmt.Errorf("ends early (want %d more bytes, %d left)", n, len(d.b))
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) conf() *pb.ConfState {
	flag := d.take(1)
	cs := &pb.ConfState{}
	if flag == nil {
		return cs
	}
	if flag[0] > 1 {
		d.err = fmt.Errorf("auto-leave flag %d", flag[0])
	}
	cs.AutoLeave = new(flag[0] == 1)
	for _, dst := range []*[]uint64{&cs.Voters, &cs.Learners, &cs.VotersOutgoing, &cs.LearnersNext} {
		p := d.take(4)
		if p == nil {
			return cs
		}
		n := binary.LittleEndian.Uint32(p)
		if n > maxMembers {
			d.err = fmt.Errorf("%d members, the limit is %d", n, maxMembers)
			return cs
		}
		for range n {
			*dst = append(*dst, d.u64())
		}
	}
	return cs
}

// saveState publishes s as the state file of dir durably (temporary file,
// fsync, rename, fsync of the directory).
func saveState(fs vfs.FS, dir string, s *raftState) error {
	path := filepath.Join(dir, StateName)
	if err := format.WriteFileAtomic(fs, path, encodeState(s)); err != nil {
		return fmt.Errorf("kvtool/cluster: save raft state: %w", err)
	}
	return nil
}

// equalState reports whether two states encode alike.
func equalState(a, b *raftState) bool { return bytes.Equal(encodeState(a), encodeState(b)) }
