package transfer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/xfertest"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// testSecret is the secret both ends use unless a test says otherwise.
var testSecret = mustSecret(xfertest.Secret)

// The helpers shared with xferstore's tests.
var (
	tcpPair  = xfertest.TCPPair
	cutAfter = xfertest.CutAfter
	waitFor  = xfertest.WaitFor
)

func mustSecret(s string) Secret {
	sec, err := NewSecret([]byte(s))
	if err != nil {
		panic(err)
	}
	return sec
}

// memSource is an in-memory Source: snapshots are real checkpoint files
// (written to a MemFS) of a model state, and the log is a slice of
// transaction entries tests append to while transfers run.
type memSource struct {
	id Identity

	mu       sync.Mutex
	base     uint64            // index of the state the log starts after
	baseKV   map[string][]byte // the state at base
	entries  []segment.Entry   // entries[i].Index == base+1+i
	snaps    map[format.XferSnapshotID][]byte
	changed  chan struct{} // closed and replaced on every append
	dropped  bool          // Pin never resumes an old snapshot (as after compaction)
	pins     atomic.Int64
	released atomic.Int64
	retains  atomic.Int64
}

// newMemSource makes a source holding n keys at index base.
func newMemSource(t testing.TB, n int, base uint64) *memSource {
	t.Helper()
	kv := map[string][]byte{}
	r := rand.New(rand.NewPCG(uint64(n), base))
	for i := 0; i < n; i++ {
		v := make([]byte, 20+r.IntN(200))
		for j := range v {
			v[j] = byte(r.Uint32())
		}
		kv[fmt.Sprintf("key:%08d", i)] = v
	}
	return &memSource{
		id:   Identity{StoreID: manifest.NewStoreID(), Epoch: 1, Term: 1, SegmentSize: 1 << 20},
		base: base, baseKV: kv, snaps: map[format.XferSnapshotID][]byte{}, changed: make(chan struct{}),
	}
}

func (m *memSource) Identity() Identity { return m.id }

// append logs a transaction putting key=value and returns its index.
func (m *memSource) append(key string, value []byte) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	idx := m.base + uint64(len(m.entries)) + 1
	data := format.AppendTxnRecord(nil, []format.TxnEffect{{Kind: format.TxnPut, Key: key, Value: value}})
	m.entries = append(m.entries, segment.Entry{Index: idx, Term: m.id.Term, Type: format.FrameWALTxn, Data: data})
	close(m.changed)
	m.changed = make(chan struct{})
	return idx
}

func (m *memSource) LastIndex() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.base + uint64(len(m.entries))
}

// stateAt is the model state after entry idx.
func (m *memSource) stateAt(idx uint64) map[string][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	kv := maps.Clone(m.baseKV)
	for _, e := range m.entries {
		if e.Index > idx {
			break
		}
		format.DecodeTxnRecord(e.Data, func(kind uint8, k, v []byte) { kv[string(k)] = bytes.Clone(v) })
	}
	return kv
}

// hashAt is the state hash after entry idx.
func (m *memSource) hashAt(idx uint64) uint64 { return stateHash(m.stateAt(idx)) }

func stateHash(kv map[string][]byte) uint64 {
	keys := slices.Sorted(maps.Keys(kv))
	h := format.NewStateHasher()
	for _, k := range keys {
		h.AddString(k, kv[k])
	}
	return h.Sum64()
}

// snapshot writes a checkpoint of the state at the last index.
func (m *memSource) snapshot() (format.XferSnapshotID, error) {
	idx := m.LastIndex()
	kv := m.stateAt(idx)
	fs := vfs.NewMem()
	keys := slices.Sorted(maps.Keys(kv))
	meta := checkpoint.Meta{StoreID: m.id.StoreID, Index: idx, Term: m.id.Term, Shards: 4}
	info, err := checkpoint.WriteFile(fs, "/ckpt", meta, checkpoint.SourceFunc(func(fn func(string, []byte) bool) {
		for _, k := range keys {
			if !fn(k, kv[k]) {
				return
			}
		}
	}), checkpoint.Options{BlockSize: 4 << 10})
	if err != nil {
		return format.XferSnapshotID{}, err
	}
	b, err := readFileFS(fs, "/ckpt")
	if err != nil {
		return format.XferSnapshotID{}, err
	}
	id := format.XferSnapshotID{Index: idx, Term: m.id.Term, Checksum: info.Checksum}
	m.mu.Lock()
	m.snaps[id] = b
	m.mu.Unlock()
	return id, nil
}

func readFileFS(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// latest is the newest snapshot, made if there is none.
func (m *memSource) latest() (format.XferSnapshotID, error) {
	m.mu.Lock()
	var best format.XferSnapshotID
	for id := range m.snaps {
		if id.Index >= best.Index {
			best = id
		}
	}
	m.mu.Unlock()
	if best.IsZero() {
		return m.snapshot()
	}
	return best, nil
}

func (m *memSource) Pin(ctx context.Context, req PinRequest) (Snapshot, error) {
	m.pins.Add(1)
	m.mu.Lock()
	b, ok := m.snaps[req.Want]
	dropped := m.dropped
	m.mu.Unlock()
	if !ok || dropped || req.Want.IsZero() {
		id, err := m.latest()
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		b = m.snaps[id]
		m.mu.Unlock()
		return &memSnap{m: m, id: id, b: b}, nil
	}
	return &memSnap{m: m, id: req.Want, b: b}, nil
}

func (m *memSource) PinLog(ctx context.Context, peer string, after uint64) (Snapshot, error) {
	if after < m.base || after > m.LastIndex() {
		return nil, fmt.Errorf("%w: after %d", ErrTooFarBehind, after)
	}
	m.pins.Add(1)
	return &memSnap{m: m, id: format.XferSnapshotID{Index: after}}, nil
}

func (m *memSource) Tail(ctx context.Context, from uint64) (Tail, error) {
	if from <= m.base {
		return nil, fmt.Errorf("%w: from %d", ErrTooFarBehind, from)
	}
	return &memTail{m: m, next: from}, nil
}

type memSnap struct {
	m  *memSource
	id format.XferSnapshotID
	b  []byte
}

func (s *memSnap) ID() format.XferSnapshotID { return s.id }
func (s *memSnap) Size() int64               { return int64(len(s.b)) }
func (s *memSnap) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(s.b).ReadAt(p, off)
}
func (s *memSnap) Retain(index uint64, needFile bool) { s.m.retains.Add(1) }
func (s *memSnap) Release(done bool)                  { s.m.released.Add(1) }

type memTail struct {
	m    *memSource
	next uint64
}

func (t *memTail) Next(ctx context.Context) (segment.Entry, error) {
	for {
		t.m.mu.Lock()
		i := t.next - t.m.base - 1
		if i < uint64(len(t.m.entries)) {
			e := t.m.entries[i]
			t.m.mu.Unlock()
			t.next++
			return e, nil
		}
		ch := t.m.changed
		t.m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return segment.Entry{}, ctx.Err()
		}
	}
}

func (t *memTail) Close() error { return nil }

// result of one transfer run by transferOnce.
type outcome struct {
	send    SendResult
	sendErr error
	recv    ReceiveResult
	recvErr error
}

// transferOnce runs Send and Receive against each other over loopback TCP.
// wrapS and wrapR, if set, wrap each end's connection (to damage or cut
// it); a failing end closes its connection so the other ends too.
func transferOnce(t testing.TB, src Source, sopts SendOptions, ropts ReceiveOptions, wrapS, wrapR func(net.Conn) net.Conn) outcome {
	t.Helper()
	if sopts.Secret.IsZero() {
		sopts.Secret = testSecret
	}
	if ropts.Secret.IsZero() {
		ropts.Secret = testSecret
	}
	var o outcome
	xfertest.Once(t, wrapS, wrapR,
		func(c net.Conn) { o.send, o.sendErr = Send(context.Background(), c, src, sopts) },
		func(c net.Conn) { o.recv, o.recvErr = Receive(context.Background(), c, ropts) })
	return o
}

// checkInstalled opens dir as a store and compares its state with the
// source's model at the store's applied index.
func checkInstalled(t testing.TB, fs vfs.FS, dir string, src *memSource) uint64 {
	t.Helper()
	st, err := store.Open(store.Options{FS: fs, Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatalf("open the received directory: %v", err)
	}
	defer st.Close()
	snap := st.Snapshot()
	if got, want := snap.Hash(), src.hashAt(snap.Index()); got != want {
		t.Fatalf("state hash at index %d: %016x, the source had %016x", snap.Index(), got, want)
	}
	if st.StoreID() != src.id.StoreID {
		t.Fatalf("store ID %s, want %s", st.StoreID(), src.id.StoreID)
	}
	return snap.Index()
}

// flipConn flips one byte at stream offset at of what it reads.
type flipConn struct {
	net.Conn
	mu   sync.Mutex
	off  int64
	at   []int64
	done int
}

func flipAt(at ...int64) func(net.Conn) net.Conn {
	return func(c net.Conn) net.Conn { return &flipConn{Conn: c, at: at} }
}

func (c *flipConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, at := range c.at {
		if at >= c.off && at < c.off+int64(n) {
			p[at-c.off] ^= 0x40
			c.done++
		}
	}
	c.off += int64(n)
	return n, err
}

func xxh(b []byte) uint64 { return xxhash.Sum64(b) }
