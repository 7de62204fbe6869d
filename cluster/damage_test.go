package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvtool/kvtool/datadir"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/segment"
	"github.com/kvtool/kvtool/store"
	"github.com/kvtool/kvtool/vfs"
)

// memberDamageEnv sets how many damaged copies TestMemberRandomDamage
// tries.
const memberDamageEnv = "KVTOOL_MEMBER_DAMAGE_TRIALS"

// TestMemberRandomDamage flips one random byte in a random file of a
// stopped member's data directory (store WAL, checkpoint, delta, manifest,
// raft log, STATE), many times over, and holds verify and the member's
// start to one another:
//
//   - verify (with VerifyRaft) finds nothing wrong: the member starts;
//   - the member does not start: verify found a fault (an operator who
//     runs verify on a member that will not start learns why);
//   - the member starts: its state is the original's at the index it
//     reached (every key written at or below it with its value, none
//     after it; the same state hash at the original's index), whatever
//     verify said: damage never becomes a wrong state.
func TestMemberRandomDamage(t *testing.T) {
	trials := damageTrials(t, 40)
	c := newTestClusterConfig(t, 3, 53, func(cfg *Config) { cfg.RetainEntries, cfg.CompactInterval = 5, -1 })
	lead := c.leader()
	id := followerOf(c, lead)
	// written maps each key to the index that applied it; values are long
	// enough that the raft log spans segments.
	written := map[string]uint64{}
	val := func(k string) string { return k + "=" + strings.Repeat(k, 250) }
	write := func(from, to int) {
		for i := from; i < to; i++ {
			k := fmt.Sprintf("k%03d", i)
			res, err := c.propose(lead, Request{Txn: put(k, val(k))})
			if err != nil {
				t.Fatal(err)
			}
			written[k] = res.Index
		}
	}
	ctx := context.Background()
	write(0, 40)
	c.converged()
	if _, err := c.node(id).st.Checkpoint(ctx); err != nil { // every file kind: a base, a delta, WAL and raft log
		t.Fatal(err)
	}
	write(40, 70)
	c.converged()
	if _, err := c.node(id).st.Delta(ctx); err != nil {
		t.Fatal(err)
	}
	// The raft log compacted up to the checkpoint: STATE names a raft
	// snapshot, and the log continues it.
	if res, err := c.node(id).n.CompactLog(); err != nil || res.Index == 0 {
		t.Fatalf("compact the member's raft log: %+v, %v", res, err)
	}
	write(70, 100)
	c.converged()
	snap := c.node(id).st.Snapshot()
	applied, hash := snap.Index(), snap.Hash()
	c.close()
	orig := c.node(id).fs

	type target struct {
		path      string
		size, end int64 // end: where its data ends (a segment's records; the file's size otherwise)
	}
	var files []target
	for _, p := range filesUnder(orig, "/data") {
		fi, err := orig.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, target{path: p, size: fi.Size(), end: fi.Size()})
	}
	for _, d := range []string{filepath.Join("/data", format.WALDir), filepath.Join("/data", RaftDir)} {
		segs, err := segment.List(orig, d)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range segs {
			for i := range files {
				if files[i].path == s.Path {
					files[i].end = s.Size
				}
			}
		}
	}
	kinds := map[string]bool{}
	for _, f := range files {
		kinds[filepath.Ext(f.path)+filepath.Base(filepath.Dir(f.path))] = true
	}
	t.Logf("%d files to damage (%v); the member applied index %d", len(files), kinds, applied)

	rng := rand.New(rand.NewPCG(53, 7))
	var verifyFound, refused, started int
	for trial := range trials {
		fs := orig.CrashClone(vfs.CrashOptions{})
		f := files[rng.IntN(len(files))]
		off := rng.Int64N(f.end) // mostly where the data is
		if rng.IntN(4) == 0 {
			off = rng.Int64N(f.size)
		}
		flipAt(t, fs, f.path, off, byte(1+rng.IntN(255)))
		what := fmt.Sprintf("trial %d: byte %d of %s (%d bytes, data to %d)", trial, off, f.path, f.size, f.end)

		rep, verr := datadir.Verify(fs, "/data", datadir.VerifyOptions{Raft: VerifyRaft})
		sound := verr == nil && rep.OK()
		if !sound {
			verifyFound++
		}
		st, n, serr := startAlone(fs, id)
		if serr != nil {
			refused++
			if sound {
				t.Fatalf("%s: verify found nothing wrong, but the member does not start: %v", what, serr)
			}
			continue
		}
		started++
		got := st.Snapshot()
		for k, at := range written {
			v, ok := got.Get(k)
			if at <= got.Index() && (!ok || string(v) != val(k)) || at > got.Index() && ok {
				n.Close()
				st.Close()
				t.Fatalf("%s: the member started at index %d with %s = %q (present %v), written at index %d: a wrong state", what, got.Index(), k, v, ok, at)
			}
		}
		if got.Index() == applied && got.Hash() != hash {
			n.Close()
			st.Close()
			t.Fatalf("%s: the member started at index %d with state hash %x, the original's is %x", what, applied, got.Hash(), hash)
		}
		n.Close()
		st.Close()
	}
	t.Logf("%d trials: verify found a fault in %d; the member refused to start on %d, started on %d (every start with the original state)",
		trials, verifyFound, refused, started)
}

// startAlone opens a member's store and starts its node on fsys, with no
// peer reachable (a network of its own): what a restart of it on that
// directory does before it hears from anyone.
func startAlone(fsys vfs.FS, id uint64) (*store.Store, *Node, error) {
	st, err := store.Open(store.Options{FS: fsys, Dir: "/data", Replica: true})
	if err != nil {
		return nil, nil, err
	}
	net := NewMemNetwork(1)
	n, err := Start(Config{
		ID: id, ClusterID: testClusterID, Peers: []uint64{1, 2, 3}, FS: fsys, Dir: "/data", Store: st,
		Transport: net.Endpoint(id), LogSegmentSize: 64 << 10, LogCacheBytes: 32 << 10,
	})
	if err != nil {
		st.Close()
		net.Close()
		return nil, nil, err
	}
	return st, n, nil
}

// flipAt XORs the byte at off of the file at path with x.
func flipAt(t *testing.T, fs vfs.FS, path string, off int64, x byte) {
	t.Helper()
	f, err := fs.OpenReadWrite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= x
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// damageTrials is memberDamageEnv's count, def without it.
func damageTrials(t *testing.T, def int) int {
	if v := os.Getenv(memberDamageEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q is not a positive count", memberDamageEnv, v)
		}
		return n
	}
	return def
}

// TestInstallRandomDamage is TestMemberRandomDamage for the directory
// states of a member that catches up by a snapshot: a crash image at each
// sync while it receives, cuts over to and installs it (before the
// install; a transfer under way in incoming/; the install's commit point
// passed with the staged copy waiting, the store not yet or half
// replaced; installed). Each trial damages one image once (a byte
// flipped, a file cut short, removed, or a run of bytes zeroed) and holds
// verify and the member's start to each other: a refused start means
// verify found a fault, and a start reaches a state that is the cluster's
// at its index (every key written at or below it, none after).
func TestInstallRandomDamage(t *testing.T) {
	trials := damageTrials(t, 150)
	c := newTestClusterConfig(t, 3, 19, snapConfig)
	written := map[string]uint64{}
	val := func(k string) string { return k + "=" + strings.Repeat(k, 1+len(written)%40) }
	vals := map[string]string{}
	_, f, _ := leaveBehind(c, func(lead uint64, phase string) {
		w := map[string]struct {
			prefix string
			n      int
		}{"before": {"a/", 20}, "during": {"b/", 60}, "tail": {"c/", 5}}[phase]
		for i := range w.n {
			k := fmt.Sprintf("%s%03d", w.prefix, i)
			v := val(k)
			res, err := c.propose(lead, Request{Txn: put(k, v)})
			if err != nil {
				t.Fatal(err)
			}
			written[k], vals[k] = res.Index, v
		}
	})
	si := installImages(c, f)

	rng := rand.New(rand.NewPCG(19, 7))
	var found, refused, started int
	for trial := range trials {
		k := rng.IntN(len(si.images))
		fs := si.images[k].CrashClone(vfs.CrashOptions{})
		what := fmt.Sprintf("trial %d: image %d of %d, %s", trial, k, len(si.images), damageOnce(t, rng, fs))
		rep, verr := VerifyMember(fs, "/data", datadir.VerifyOptions{}) // kvtool verify's, an install pending or not
		sound := verr == nil && rep.OK()
		if !sound {
			found++
		}
		idx, got, serr := startImage(fs, f, c.ids)
		if serr != nil {
			refused++
			if sound {
				t.Fatalf("%s: verify found nothing wrong, but the member does not start: %v", what, serr)
			}
			continue
		}
		started++
		for key, at := range written {
			v, ok := got[key]
			if at <= idx && v != vals[key] || at > idx && ok {
				t.Fatalf("%s: the member started at index %d with %s = %q (present %v), written at index %d: a wrong state", what, idx, key, v, ok, at)
			}
		}
	}
	t.Logf("%d trials over %d crash images: verify found a fault in %d; the member refused to start on %d, started on %d (each with the cluster's state at its index)",
		trials, len(si.images), found, refused, started)
}

// damageOnce damages one random file of the data directory on fs once:
// a byte flipped, the file cut short, removed, or a run of bytes zeroed
// (mostly near its start, where headers and recent data are). It returns
// what it did.
func damageOnce(t *testing.T, rng *rand.Rand, fs *vfs.MemFS) string {
	t.Helper()
	files := filesUnder(fs, "/data")
	p := files[rng.IntN(len(files))]
	fi, err := fs.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	off := rng.Int64N(fi.Size())
	if rng.IntN(2) == 0 {
		off = rng.Int64N(min(fi.Size(), 4096))
	}
	change := func(do func(f vfs.File) error) {
		f, err := fs.OpenReadWrite(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := do(f); err != nil {
			t.Fatal(err)
		}
	}
	switch rng.IntN(5) {
	case 0:
		change(func(f vfs.File) error { return f.Truncate(off) })
		return fmt.Sprintf("%s cut at %d", p, off)
	case 1:
		if err := fs.Remove(p); err != nil {
			t.Fatal(err)
		}
		return p + " removed"
	case 2:
		n := min(int64(1+rng.IntN(600)), fi.Size()-off)
		change(func(f vfs.File) error { _, err := f.WriteAt(make([]byte, n), off); return err })
		return fmt.Sprintf("%s zeroed at %d for %d bytes", p, off, n)
	}
	flipAt(t, fs, p, off, byte(1+rng.IntN(255)))
	return fmt.Sprintf("%s: byte %d flipped", p, off)
}

// startImage starts member id alone on the image fs (no peer reachable)
// and returns the index its store stands at and its keys' values.
func startImage(fs vfs.FS, id uint64, peers []uint64) (uint64, map[string]string, error) {
	s, err := store.Open(store.Options{FS: fs, Dir: "/data", Replica: true, Shards: 4, SegmentSize: 1 << 20})
	if err != nil {
		return 0, nil, err
	}
	defer s.Close()
	n, err := Start(Config{ID: id, ClusterID: testClusterID, Peers: peers, FS: fs, Dir: "/data", Store: s,
		Transport: NewMemNetwork(1).Endpoint(id), TickInterval: time.Hour, CompactInterval: -1,
		LogSegmentSize: 64 << 10, LogCacheBytes: 32 << 10})
	if err != nil {
		return 0, nil, err
	}
	defer n.Close()
	snap := s.Snapshot()
	kv := map[string]string{}
	for _, prefix := range []string{"a/", "b/", "c/"} {
		for i := range 100 {
			k := fmt.Sprintf("%s%03d", prefix, i)
			if v, ok := snap.Get(k); ok {
				kv[k] = string(v)
			}
		}
	}
	return snap.Index(), kv, nil
}

// filesUnder lists the files below dir on fs that damage can hit, sorted:
// every file but the lock, and none that is empty.
func filesUnder(fs *vfs.MemFS, dir string) []string {
	var out []string
	for p, data := range fs.Tree() {
		if strings.HasPrefix(p, dir+"/") && !strings.HasSuffix(p, "/") && filepath.Base(p) != format.LockName && len(data) > 0 {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
