package xferstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/internal/xfertest"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/transfer"
	"github.com/kvtool/kvtool/vfs"
)

const (
	bankAccounts = 50
	bankInitial  = 1000
)

func acct(i int) string { return fmt.Sprintf("acct:%03d", i) }

// newSourceStore creates a store holding n filler keys and the bank.
func newSourceStore(t testing.TB, dir string, n int) *store.Store {
	t.Helper()
	return newSourceStoreSeg(t, dir, n, 1<<20)
}

// newSourceStoreSeg is newSourceStore with WAL segments of segSize bytes.
func newSourceStoreSeg(t testing.TB, dir string, n int, segSize int64) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, Create: true, Shards: 8, SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	txn := &store.Txn{}
	r := rand.New(rand.NewPCG(uint64(n), 1))
	for i := 0; i < n; i++ {
		v := make([]byte, 100)
		for j := range v {
			v[j] = byte(r.Uint32())
		}
		txn.Ops = append(txn.Ops, store.Op{Kind: store.OpPut, Key: fmt.Sprintf("fill:%011d", i), Value: v})
		if len(txn.Ops) == 1000 || i == n-1 {
			if _, err := st.Commit(ctx, txn); err != nil {
				t.Fatal(err)
			}
			txn = &store.Txn{}
		}
	}
	for i := 0; i < bankAccounts; i++ {
		txn.Ops = append(txn.Ops, store.Op{Kind: store.OpPut, Key: acct(i), Value: []byte(strconv.Itoa(bankInitial))})
	}
	if _, err := st.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	return st
}

// bankTxn moves amt from a to b and records the transfer under its id.
func bankTxn(id string, a, b int, amt int64) *store.Txn {
	return &store.Txn{Ops: []store.Op{
		{Kind: store.OpAdd, Key: acct(a), Delta: -amt},
		{Kind: store.OpAdd, Key: acct(b), Delta: amt},
		{Kind: store.OpCheck, Key: acct(a), Check: store.CheckMin, Min: 0},
		{Kind: store.OpPut, Key: "xfer:" + id, Value: fmt.Appendf(nil, "%d,%d,%d", a, b, amt)},
	}}
}

// runBank runs writers until stop is closed and returns the ids they had
// acknowledged.
func runBank(t testing.TB, st *store.Store, writers int, stop chan struct{}) func() []string {
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				a, b := r.IntN(bankAccounts), r.IntN(bankAccounts)
				_, err := st.Commit(context.Background(), bankTxn(id, a, b, int64(1+r.IntN(20))))
				if err == nil {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				} else if !errors.Is(err, store.ErrCheckFailed) {
					t.Errorf("commit: %v", err)
					return
				}
			}
		}()
	}
	return func() []string {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return acked
	}
}

// checkBank checks the bank invariant in a snapshot.
func checkBank(t testing.TB, snap *store.Snapshot) {
	t.Helper()
	total := 0
	for i := 0; i < bankAccounts; i++ {
		v, _ := snap.Get(acct(i))
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 {
			t.Fatalf("index %d: %s = %q", snap.Index(), acct(i), v)
		}
		total += n
	}
	if total != bankAccounts*bankInitial {
		t.Fatalf("index %d: the bank holds %d, want %d", snap.Index(), total, bankAccounts*bankInitial)
	}
}

// serveTransfers accepts transfer connections on a loopback listener and
// sends from src on each until ctx ends.
func serveTransfers(t testing.TB, ctx context.Context, src transfer.Source) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				transfer.Send(ctx, c, src, transfer.SendOptions{Secret: testSecret, ChunkSize: 64 << 10, Peer: c.RemoteAddr().String(), RetainEvery: 50 * time.Millisecond})
			}()
		}
	}()
	t.Cleanup(wg.Wait)
	return ln.Addr().String()
}

// TestHotJoinUnderLoad: a source store takes bank transfers at full speed
// while a new node joins over loopback TCP and follows it as a read
// replica. After the load stops, the replica reaches the source's index
// with the same state hash, the bank total intact and every acknowledged
// transfer present.
func TestHotJoinUnderLoad(t *testing.T) {
	srcDir, joinDir := t.TempDir(), t.TempDir()
	st := newSourceStore(t, srcDir, 20000)
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := serveTransfers(t, ctx, NewStoreSource(st, StoreSourceOptions{}))

	stop := make(chan struct{})
	acked := runBank(t, st, 4, stop)
	start := st.Snapshot().Index()
	waitFor(t, "the load to be on before the join starts", func() bool { return st.Snapshot().Index() >= start+50 })

	op := &replicaOpener{xfertest.Replicas{Dir: joinDir}}
	var leases atomic.Int64
	joined := make(chan error, 1)
	go func() {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			joined <- err
			return
		}
		defer conn.Close()
		_, err = transfer.Receive(ctx, conn, transfer.ReceiveOptions{Dir: joinDir, Secret: testSecret, Follow: true, Open: op.open, Peer: addr, CreditEvery: fastCredit,
			Progress: func(transfer.Progress) { leases.Store(max(leases.Load(), int64(len(st.Leases())))) }})
		joined <- err
	}()
	waitFor(t, "the joiner to cut over", func() bool { return op.store() != nil })
	cut := st.Snapshot().Index()
	waitFor(t, "more load while the replica follows", func() bool { return st.Snapshot().Index() >= cut+200 })
	close(stop)
	ids := acked()
	last := st.Snapshot().Index()
	waitFor(t, "the replica to catch up", func() bool { return op.store().Snapshot().Index() >= last })

	src, rep := st.Snapshot(), op.store().Snapshot()
	if src.Index() != rep.Index() || src.Hash() != rep.Hash() {
		t.Fatalf("source at %d hash %016x, replica at %d hash %016x", src.Index(), src.Hash(), rep.Index(), rep.Hash())
	}
	checkBank(t, rep)
	for _, id := range ids {
		if _, ok := rep.Get("xfer:" + id); !ok {
			t.Fatalf("acknowledged transfer %s is missing on the replica", id)
		}
	}
	n := 0
	rep.Scan(store.ScanOptions{Prefix: "xfer:"}, func(string, []byte) bool { n++; return true })
	if n != len(ids) {
		t.Fatalf("the replica holds %d transfers, %d were acknowledged", n, len(ids))
	}
	if leases.Load() == 0 {
		t.Errorf("no lease was visible on the source during the join")
	}
	if _, err := op.store().Commit(ctx, bankTxn("r", 0, 1, 1)); !errors.Is(err, store.ErrReplica) {
		t.Errorf("a commit on the replica: %v", err)
	}
	cancel()
	if err := <-joined; err == nil {
		t.Errorf("the follower ended without an error")
	}
	op.store().Close()
	t.Logf("%d transfers acknowledged during the join; source and replica at index %d", len(ids), src.Index())
}

// TestStoreSourceResume cuts a transfer from a live store, then restarts
// the source process (closes and reopens the store): the receiver resumes
// the same checkpoint.
func TestStoreSourceResume(t *testing.T) {
	srcDir, dir := t.TempDir(), t.TempDir()
	st := newSourceStore(t, srcDir, 20000)
	sopts, ropts := smallOpts(dir)
	ss := NewStoreSource(st, StoreSourceOptions{})
	o := transferOnce(t, ss, sopts, ropts, nil, cutAfter(300<<10))
	if !errors.Is(o.recvErr, transfer.ErrPeerGone) {
		t.Fatalf("receive: %v", o.recvErr)
	}
	if ls := st.Leases(); len(ls) != 1 || ls[0].State != store.LeaseActive || len(ls[0].Files) != 1 {
		t.Fatalf("after the cut the source holds leases %+v, want the parked one", ls)
	}
	for i := 0; i < 10; i++ {
		if _, err := st.Put(context.Background(), fmt.Sprintf("late:%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	st, err := store.Open(store.Options{Dir: srcDir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o = transferOnce(t, NewStoreSource(st, StoreSourceOptions{}), sopts, ropts, nil, nil)
	if o.recvErr != nil || !o.recv.Resumed || o.recv.ResumeFrom == 0 || o.send.TailEnd != st.Snapshot().Index() {
		t.Fatalf("%+v %v\n%+v", o.recv, o.recvErr, o.send)
	}
	if ls := st.Leases(); len(ls) != 0 {
		t.Errorf("leases left after a completed transfer: %+v", ls)
	}
	rep, err := store.Open(store.Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	if a, b := rep.Snapshot(), st.Snapshot(); a.Index() != b.Index() || a.Hash() != b.Hash() {
		t.Fatalf("received %d/%016x, source %d/%016x", a.Index(), a.Hash(), b.Index(), b.Hash())
	}
}

// TestDirSource sends an offline data directory, is cut, and a new sender
// process (a new DirSource) resumes the same checkpoint it left behind.
func TestDirSource(t *testing.T) {
	srcDir, dir := t.TempDir(), t.TempDir()
	st := newSourceStore(t, srcDir, 20000)
	want := st.Snapshot()
	wantIdx, wantHash := want.Index(), want.Hash()
	st.Close()
	ds, err := OpenDirSource(nil, srcDir)
	if err != nil {
		t.Fatal(err)
	}
	sopts, ropts := smallOpts(dir)
	o := transferOnce(t, ds, sopts, ropts, nil, cutAfter(300<<10))
	if !errors.Is(o.recvErr, transfer.ErrPeerGone) {
		t.Fatalf("receive: %v", o.recvErr)
	}
	ds.Close()
	if ds, err = OpenDirSource(nil, srcDir); err != nil {
		t.Fatal(err)
	}
	o = transferOnce(t, ds, sopts, ropts, nil, nil)
	if o.recvErr != nil || !o.recv.Resumed {
		t.Fatalf("%+v %v", o.recv, o.recvErr)
	}
	if err := ds.Cleanup(); err != nil {
		t.Fatal(err)
	}
	ds.Close()
	if names, _ := vfs.Default.List(filepath.Join(srcDir, format.TransferDir)); len(names) != 0 {
		t.Errorf("cleanup left %v", names)
	}
	rep, err := store.Open(store.Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	if s := rep.Snapshot(); s.Index() != wantIdx || s.Hash() != wantHash {
		t.Fatalf("received %d/%016x, want %d/%016x", s.Index(), s.Hash(), wantIdx, wantHash)
	}
}

// TestStoreSourceFollowerLease: a follower that disconnects keeps a lease
// on the log after what it holds (no snapshot file), so compaction cannot
// take what it needs to catch up; when it reconnects, that lease is
// replaced by its new session's.
func TestStoreSourceFollowerLease(t *testing.T) {
	st := newSourceStore(t, t.TempDir(), 1000)
	defer st.Close()
	ss := NewStoreSource(st, StoreSourceOptions{})
	dir := t.TempDir()
	op := &replicaOpener{xfertest.Replicas{Dir: dir}}
	defer func() { op.store().Close() }()
	stop := follow(t, ss, dir, op)
	if _, err := st.Put(context.Background(), "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replica", func() bool { s := op.store(); return s != nil && s.Snapshot().Index() == st.Snapshot().Index() })
	waitFor(t, "the lease to let go of the snapshot", func() bool { ls := st.Leases(); return len(ls) == 1 && len(ls[0].Files) == 0 })
	stop()
	waitFor(t, "the session's lease to be parked", func() bool {
		ls := st.Leases()
		return len(ls) == 1 && ls[0].State == store.LeaseActive && len(ls[0].Files) == 0
	})
	if _, err := st.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(context.Background(), "b", []byte("2")); err != nil {
		t.Fatal(err)
	}
	stop = follow(t, ss, dir, op)
	defer stop()
	waitFor(t, "the replica to catch up after compaction", func() bool { return op.store().Snapshot().Index() == st.Snapshot().Index() })
	if ls := st.Leases(); len(ls) != 1 {
		t.Fatalf("leases after the reconnect: %+v", ls)
	}
}

// TestStoreSourceReuseShare: a new snapshot is the store's base
// checkpoint while the WAL after it is a small share of the base's size
// (the receiver gets it as the tail), and a checkpoint of the current
// state once the WAL after the base outgrows that share, however far
// below ReuseBase it still is. The WAL before the base shares its
// segment with the tail and is not counted.
func TestStoreSourceReuseShare(t *testing.T) {
	st := newSourceStoreSeg(t, t.TempDir(), 40000, 16<<20)
	defer st.Close()
	ctx := context.Background()
	base, err := st.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ss := NewStoreSource(st, StoreSourceOptions{})
	pin := func() uint64 {
		t.Helper()
		snap, err := ss.Pin(ctx, transfer.PinRequest{Peer: "p"})
		if err != nil {
			t.Fatal(err)
		}
		snap.Release(true)
		return snap.ID().Index
	}
	// puts writes n keys of 1000 bytes after the base, 100 to a record.
	puts := func(n int) {
		for i := 0; i < n; i += 100 {
			txn := &store.Txn{}
			for j := i; j < min(n, i+100); j++ {
				txn.Ops = append(txn.Ops, store.Op{Kind: store.OpPut, Key: fmt.Sprintf("tail:%d", j), Value: make([]byte, 1000)})
			}
			if _, err := st.Commit(ctx, txn); err != nil {
				t.Fatal(err)
			}
		}
	}
	puts(100) // 100 KiB after a base of about 4 MB
	if got := pin(); got != base.Meta.Index {
		t.Fatalf("with %d bytes of WAL after a base of %d, the snapshot is at %d, want the base's %d",
			st.Log().BytesAfter(base.Meta.Index), base.Size, got, base.Meta.Index)
	}
	puts(int(float64(base.Size)*DefaultReuseShare/1000) + 100)
	after := st.Log().BytesAfter(base.Meta.Index)
	if after >= DefaultReuseBase || after <= int64(float64(base.Size)*DefaultReuseShare) {
		t.Fatalf("the WAL after the base takes %d bytes: the test wants it between a share of the base (%d) and ReuseBase", after, base.Size)
	}
	if got, want := pin(), st.Snapshot().Index(); got != want {
		t.Fatalf("with %d bytes of WAL after a base of %d, the snapshot is at %d, want a new checkpoint at %d", after, base.Size, got, want)
	}
	if m := st.CurrentManifest(); m.Base.Index != st.Snapshot().Index() {
		t.Fatalf("the store's base is at %d after the new snapshot, want %d", m.Base.Index, st.Snapshot().Index())
	}
}
