package vfs

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestCrashTable checks what a crash keeps after each kind of change, with
// and without the syncs that make it durable.
func TestCrashTable(t *testing.T) {
	tests := []struct {
		name string
		do   func(t *testing.T, m *MemFS)
		want map[string]string // the whole crash image; directories end in "/"
	}{{
		name: "unsynced bytes lost",
		do: func(t *testing.T, m *MemFS) {
			f := durableFile(t, m, "/d/f", "a")
			mustWrite(t, f, "b")
		},
		want: map[string]string{"/d/": "", "/d/f": "a"},
	}, {
		name: "synced bytes kept",
		do: func(t *testing.T, m *MemFS) {
			f := durableFile(t, m, "/d/f", "a")
			mustWrite(t, f, "b")
			mustSync(t, f)
		},
		want: map[string]string{"/d/": "", "/d/f": "ab"},
	}, {
		name: "nothing synced",
		do: func(t *testing.T, m *MemFS) {
			writeNew(t, m, "/d/f", "a")
		},
		want: map[string]string{"/d/": ""},
	}, {
		name: "file synced but directory not: file absent",
		do: func(t *testing.T, m *MemFS) {
			f := mustCreate(t, m, "/d/f")
			mustWrite(t, f, "a")
			mustSync(t, f)
		},
		want: map[string]string{"/d/": ""},
	}, {
		name: "directory synced but file not: file empty",
		do: func(t *testing.T, m *MemFS) {
			writeNew(t, m, "/d/f", "a")
			mustSyncDir(t, m, "/d")
		},
		want: map[string]string{"/d/": "", "/d/f": ""},
	}, {
		name: "rename without SyncDir: old name",
		do: func(t *testing.T, m *MemFS) {
			durableFile(t, m, "/d/a", "x")
			mustRename(t, m, "/d/a", "/d/b")
		},
		want: map[string]string{"/d/": "", "/d/a": "x"},
	}, {
		name: "rename with SyncDir: new name",
		do: func(t *testing.T, m *MemFS) {
			durableFile(t, m, "/d/a", "x")
			mustRename(t, m, "/d/a", "/d/b")
			mustSyncDir(t, m, "/d")
		},
		want: map[string]string{"/d/": "", "/d/b": "x"},
	}, {
		name: "rename over a file without SyncDir: both as before",
		do: func(t *testing.T, m *MemFS) {
			durableFile(t, m, "/d/a", "new")
			durableFile(t, m, "/d/b", "old")
			mustRename(t, m, "/d/a", "/d/b")
		},
		want: map[string]string{"/d/": "", "/d/a": "new", "/d/b": "old"},
	}, {
		name: "rename over a file with SyncDir: replaced",
		do: func(t *testing.T, m *MemFS) {
			durableFile(t, m, "/d/a", "new")
			durableFile(t, m, "/d/b", "old")
			mustRename(t, m, "/d/a", "/d/b")
			mustSyncDir(t, m, "/d")
		},
		want: map[string]string{"/d/": "", "/d/b": "new"},
	}, {
		name: "rename across directories, only target synced: both names",
		do: func(t *testing.T, m *MemFS) {
			durableFile(t, m, "/d/a", "x")
			durableDir(t, m, "/e")
			mustRename(t, m, "/d/a", "/e/a")
			mustSyncDir(t, m, "/e")
		},
		want: map[string]string{"/d/": "", "/d/a": "x", "/e/": "", "/e/a": "x"},
	}, {
		name: "rename across directories, only source synced: neither",
		do: func(t *testing.T, m *MemFS) {
			durableFile(t, m, "/d/a", "x")
			durableDir(t, m, "/e")
			mustRename(t, m, "/d/a", "/e/a")
			mustSyncDir(t, m, "/d")
		},
		want: map[string]string{"/d/": "", "/e/": ""},
	}, {
		name: "rename across directories, both synced: new name",
		do: func(t *testing.T, m *MemFS) {
			durableFile(t, m, "/d/a", "x")
			durableDir(t, m, "/e")
			mustRename(t, m, "/d/a", "/e/a")
			mustSyncDir(t, m, "/e")
			mustSyncDir(t, m, "/d")
		},
		want: map[string]string{"/d/": "", "/e/": "", "/e/a": "x"},
	}, {
		name: "remove without SyncDir: still there",
		do: func(t *testing.T, m *MemFS) {
			durableFile(t, m, "/d/f", "x")
			mustRemove(t, m, "/d/f")
		},
		want: map[string]string{"/d/": "", "/d/f": "x"},
	}, {
		name: "remove with SyncDir: gone",
		do: func(t *testing.T, m *MemFS) {
			durableFile(t, m, "/d/f", "x")
			mustRemove(t, m, "/d/f")
			mustSyncDir(t, m, "/d")
		},
		want: map[string]string{"/d/": ""},
	}, {
		name: "remove and recreate without SyncDir: the old file",
		do: func(t *testing.T, m *MemFS) {
			durableFile(t, m, "/d/f", "old")
			mustRemove(t, m, "/d/f")
			f := mustCreate(t, m, "/d/f")
			mustWrite(t, f, "new")
			mustSync(t, f) // the new inode is durable, its name is not
		},
		want: map[string]string{"/d/": "", "/d/f": "old"},
	}, {
		name: "create over an existing file, unsynced: old contents",
		do: func(t *testing.T, m *MemFS) {
			durableFile(t, m, "/d/f", "old")
			mustWrite(t, mustCreate(t, m, "/d/f"), "new")
		},
		want: map[string]string{"/d/": "", "/d/f": "old"},
	}, {
		name: "create over an existing file, synced: new contents",
		do: func(t *testing.T, m *MemFS) {
			durableFile(t, m, "/d/f", "old")
			f := mustCreate(t, m, "/d/f")
			mustWrite(t, f, "new")
			mustSync(t, f)
		},
		want: map[string]string{"/d/": "", "/d/f": "new"},
	}, {
		name: "truncate unsynced: old size",
		do: func(t *testing.T, m *MemFS) {
			f := durableFile(t, m, "/d/f", "abcdef")
			mustTruncate(t, f, 2)
		},
		want: map[string]string{"/d/": "", "/d/f": "abcdef"},
	}, {
		name: "truncate synced: new size",
		do: func(t *testing.T, m *MemFS) {
			f := durableFile(t, m, "/d/f", "abcdef")
			mustTruncate(t, f, 2)
			mustSync(t, f)
		},
		want: map[string]string{"/d/": "", "/d/f": "ab"},
	}, {
		name: "preallocate unsynced: old size",
		do: func(t *testing.T, m *MemFS) {
			f := durableFile(t, m, "/d/f", "ab")
			mustPreallocate(t, f, 6)
		},
		want: map[string]string{"/d/": "", "/d/f": "ab"},
	}, {
		name: "preallocate synced: new size",
		do: func(t *testing.T, m *MemFS) {
			f := durableFile(t, m, "/d/f", "ab")
			mustPreallocate(t, f, 6)
			mustSync(t, f)
		},
		want: map[string]string{"/d/": "", "/d/f": "ab\x00\x00\x00\x00"},
	}, {
		name: "MkdirAll without SyncDir: directories lost",
		do: func(t *testing.T, m *MemFS) {
			mustMkdirAll(t, m, "/d/x/y")
		},
		want: map[string]string{"/d/": ""},
	}, {
		name: "MkdirAll with SyncDir of each parent: directories kept",
		do: func(t *testing.T, m *MemFS) {
			mustMkdirAll(t, m, "/d/x/y")
			mustSyncDir(t, m, "/d/x")
			mustSyncDir(t, m, "/d")
		},
		want: map[string]string{"/d/": "", "/d/x/": "", "/d/x/y/": ""},
	}, {
		name: "MkdirAll, only the innermost parent synced: everything below the unsynced entry lost",
		do: func(t *testing.T, m *MemFS) {
			mustMkdirAll(t, m, "/d/x/y")
			mustSyncDir(t, m, "/d/x")
		},
		want: map[string]string{"/d/": ""},
	}, {
		name: "file and its new directory synced, the directory's parent not: file lost",
		do: func(t *testing.T, m *MemFS) {
			mustMkdirAll(t, m, "/d/x")
			durableFile(t, m, "/d/x/f", "a")
		},
		want: map[string]string{"/d/": ""},
	}, {
		name: "file in a new directory, every parent synced: file kept",
		do: func(t *testing.T, m *MemFS) {
			mustMkdirAll(t, m, "/d/x")
			durableFile(t, m, "/d/x/f", "a")
			mustSyncDir(t, m, "/d")
		},
		want: map[string]string{"/d/": "", "/d/x/": "", "/d/x/f": "a"},
	}, {
		name: "removed directory, parent not synced: back",
		do: func(t *testing.T, m *MemFS) {
			durableDir(t, m, "/d/x")
			mustRemove(t, m, "/d/x")
		},
		want: map[string]string{"/d/": "", "/d/x/": ""},
	}, {
		name: "renamed directory, parent not synced: old name with its files",
		do: func(t *testing.T, m *MemFS) {
			durableDir(t, m, "/d/x")
			durableFile(t, m, "/d/x/f", "a")
			mustRename(t, m, "/d/x", "/d/y")
		},
		want: map[string]string{"/d/": "", "/d/x/": "", "/d/x/f": "a"},
	}, {
		name: "renamed directory, parent synced: new name with its files",
		do: func(t *testing.T, m *MemFS) {
			durableDir(t, m, "/d/x")
			durableFile(t, m, "/d/x/f", "a")
			mustRename(t, m, "/d/x", "/d/y")
			mustSyncDir(t, m, "/d")
		},
		want: map[string]string{"/d/": "", "/d/y/": "", "/d/y/f": "a"},
	}, {
		name: "a file keeps its inode across a synced rename",
		do: func(t *testing.T, m *MemFS) {
			f := durableFile(t, m, "/d/a", "x")
			mustRename(t, m, "/d/a", "/d/b")
			mustSyncDir(t, m, "/d")
			mustWrite(t, f, "y") // through the handle opened as /d/a
			mustSync(t, f)
		},
		want: map[string]string{"/d/": "", "/d/b": "xy"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMem()
			durableDir(t, m, "/d")
			tt.do(t, m)
			before := m.Tree()
			got := m.CrashClone(CrashOptions{}).Tree()
			if !maps.Equal(got, tt.want) {
				t.Errorf("crash image:\n got %q\nwant %q", got, tt.want)
			}
			if after := m.Tree(); !maps.Equal(before, after) {
				t.Errorf("CrashClone changed the original:\n got %q\nwant %q", after, before)
			}
			checkInvariants(t, m)
		})
	}
}

// TestCrashCloneIsIndependent checks that the clone and the original share
// nothing and both keep working.
func TestCrashCloneIsIndependent(t *testing.T) {
	m := NewMem()
	durableDir(t, m, "/d")
	f := durableFile(t, m, "/d/f", "synced")
	mustWrite(t, f, "+unsynced")
	c := m.CrashClone(CrashOptions{})

	cf, err := c.OpenReadWrite("/d/f")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, cf, "CLONE")
	writeNew(t, c, "/d/only-in-clone", "x")
	mustWrite(t, f, "+more")
	mustSync(t, f)

	wantFile(t, m, "/d/f", "synced+unsynced+more")
	wantNotExist(t, m, "/d/only-in-clone")
	wantFile(t, c, "/d/f", "CLONEd")
	if c.SyncCount() != 0 {
		t.Errorf("clone SyncCount = %d, want 0", c.SyncCount())
	}
	// The clone is wholly durable: crashing it again changes nothing.
	if got, want := c.CrashClone(CrashOptions{}).Tree(), map[string]string{"/d/": "", "/d/f": "synced"}; !maps.Equal(got, want) {
		t.Errorf("crash of clone = %q, want %q", got, want)
	}
}

// TestCrashCloneDropsLocks checks that a crash image starts unlocked, as a
// rebooted machine does.
func TestCrashCloneDropsLocks(t *testing.T) {
	m := NewMem()
	l, err := m.Lock("/LOCK")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mustSyncDir(t, m, "/")
	l2, err := m.CrashClone(CrashOptions{}).Lock("/LOCK")
	if err != nil {
		t.Fatalf("Lock in the crash image: %v", err)
	}
	l2.Close()
}

// TestCrashDirectoryCycle builds durable entries that form a directory
// cycle (each directory renamed across parents, with only one parent synced
// each time) and checks that the crash image cuts it instead of looping.
func TestCrashDirectoryCycle(t *testing.T) {
	m := NewMem()
	durableDir(t, m, "/A")
	durableDir(t, m, "/B")
	mustRename(t, m, "/A", "/B/A")
	mustSyncDir(t, m, "/B") // durable: B holds A
	mustRename(t, m, "/B/A", "/A")
	mustRename(t, m, "/B", "/A/B")
	mustSyncDir(t, m, "/A") // durable: A holds B, and root still holds both
	want := map[string]string{"/A/": "", "/A/B/": ""}
	if got := m.CrashClone(CrashOptions{}).Tree(); !maps.Equal(got, want) {
		t.Errorf("crash image = %q, want %q", got, want)
	}
}

// testOp is one unsynced file operation of the property test, kept in a
// form the test replays with its own model.
type testOp struct {
	kind string // "write", "truncate", "prealloc"
	off  int64
	data []byte
}

func (op testOp) do(t *testing.T, f File) {
	var err error
	switch op.kind {
	case "write":
		_, err = f.WriteAt(op.data, op.off)
	case "truncate":
		err = f.Truncate(op.off)
	case "prealloc":
		err = f.Preallocate(op.off)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// model applies op to b with plain slice code, independent of MemFS's.
func (op testOp) model(b []byte) []byte {
	b = bytes.Clone(b)
	switch op.kind {
	case "write":
		if len(op.data) == 0 {
			return b
		}
		for int64(len(b)) < op.off+int64(len(op.data)) {
			b = append(b, 0)
		}
		copy(b[op.off:], op.data)
	case "truncate":
		for int64(len(b)) < op.off {
			b = append(b, 0)
		}
		b = b[:op.off]
	case "prealloc":
		for int64(len(b)) < op.off {
			b = append(b, 0)
		}
	}
	return b
}

func randomOps(r *rand.Rand, size int64) []testOp {
	ops := make([]testOp, 1+r.IntN(8))
	for i := range ops {
		switch r.IntN(5) {
		case 0:
			ops[i] = testOp{kind: "truncate", off: r.Int64N(size + 4)}
		case 1:
			ops[i] = testOp{kind: "prealloc", off: r.Int64N(size + 8)}
		default:
			data := bytes.Repeat([]byte{byte('A' + i)}, 1+r.IntN(5))
			ops[i] = testOp{kind: "write", off: r.Int64N(size + 4), data: data}
		}
		size = int64(len(ops[i].model(make([]byte, size))))
	}
	return ops
}

// crashStates returns every contents the file may have after a crash: the
// synced base plus each prefix of ops, and with tear, each prefix whose last
// write is cut to each prefix of its bytes.
func crashStates(base []byte, ops []testOp, tear bool) map[string]bool {
	states := map[string]bool{string(base): true}
	cur := base
	for _, op := range ops {
		if tear && op.kind == "write" {
			for j := range len(op.data) {
				torn := op
				torn.data = op.data[:j]
				states[string(torn.model(cur))] = true
			}
		}
		cur = op.model(cur)
		states[string(cur)] = true
	}
	return states
}

// TestCrashPartialFileProperty checks over many seeds that a crash with
// Rand keeps exactly a prefix of each file's unsynced operations (its last
// write possibly torn), and that the randomness reaches both ends.
func TestCrashPartialFileProperty(t *testing.T) {
	for _, tear := range []bool{false, true} {
		t.Run(fmt.Sprintf("tear=%v", tear), func(t *testing.T) {
			var sawBase, sawAll, sawTorn bool
			for seed := range uint64(400) {
				r := rand.New(rand.NewPCG(seed, 1))
				base := []byte("base-contents")
				m := NewMem()
				f := durableFile(t, m, "/f", string(base))
				// Synced rounds first: their operations must never be
				// replayed again onto the synced bytes.
				for range r.IntN(3) {
					for _, op := range randomOps(r, int64(len(base))) {
						op.do(t, f)
						base = op.model(base)
					}
					mustSync(t, f)
				}
				ops := randomOps(r, int64(len(base)))
				for _, op := range ops {
					op.do(t, f)
				}
				img := m.CrashClone(CrashOptions{Rand: r, TearLast: tear})
				got := string(readAll(t, img, "/f"))
				boundaries := crashStates(base, ops, false)
				if !crashStates(base, ops, tear)[got] {
					t.Fatalf("seed %d: crash image %q is no prefix of %v on %q", seed, got, ops, base)
				}
				sawBase = sawBase || got == string(base)
				sawAll = sawAll || got == string(readAll(t, m, "/f"))
				sawTorn = sawTorn || !boundaries[got]
			}
			if !sawBase || !sawAll || sawTorn != tear {
				t.Errorf("over 400 seeds: saw base %v, saw everything %v, saw torn %v (tear %v)", sawBase, sawAll, sawTorn, tear)
			}
		})
	}
}

// TestCrashPartialDirProperty checks over many seeds that a crash with Rand
// keeps exactly a prefix of a directory's unsynced entry changes.
func TestCrashPartialDirProperty(t *testing.T) {
	seen := map[int]bool{} // how many ops were kept
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 2))
		m := NewMem()
		durableDir(t, m, "/d")
		model := map[string]string{}
		for i := range 3 {
			name := fmt.Sprintf("/d/f%d", i)
			durableFile(t, m, name, name)
			model[name] = name
		}
		// Synced rounds first: their changes must never be replayed
		// again onto the durable entries.
		for round := range r.IntN(3) {
			for i := range 4 {
				randomDirOp(t, r, m, model, 100*(round+1)+i)
			}
			mustSyncDir(t, m, "/d")
		}
		states := []map[string]string{maps.Clone(model)}
		for i := range 6 {
			randomDirOp(t, r, m, model, i)
			states = append(states, maps.Clone(model))
		}
		got := files(m.CrashClone(CrashOptions{Rand: r}).Tree())
		k := slices.IndexFunc(states, func(s map[string]string) bool { return maps.Equal(s, got) })
		if k < 0 {
			t.Fatalf("seed %d: crash image %q is no prefix state of %q", seed, got, states)
		}
		seen[k] = true
	}
	if !seen[0] || !seen[6] {
		t.Errorf("kept-op counts seen: %v; want 0 and 6 among them", seen)
	}
}

// TestCrashPartialMkdir checks that a directory made by MkdirAll is an
// unsynced entry like any other under partial persistence: a crash keeps
// it (with the synced file inside) or loses it whole, and both happen.
func TestCrashPartialMkdir(t *testing.T) {
	m := NewMem()
	durableDir(t, m, "/d")
	mustMkdirAll(t, m, "/d/x")
	durableFile(t, m, "/d/x/f", "data")
	seen := map[bool]bool{}
	for seed := range uint64(64) {
		img := m.CrashClone(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 5))}).Tree()
		kept := maps.Equal(img, map[string]string{"/d/": "", "/d/x/": "", "/d/x/f": "data"})
		if !kept && !maps.Equal(img, map[string]string{"/d/": ""}) {
			t.Fatalf("seed %d: crash image %q is neither the directory whole nor none of it", seed, img)
		}
		seen[kept] = true
	}
	if !seen[true] || !seen[false] {
		t.Fatalf("over 64 seeds the unsynced directory was kept: %v", seen)
	}
}

// randomDirOp does one unsynced create, rename or remove in /d, on m and on
// model. Created files are synced, so their contents name them in the image.
func randomDirOp(t *testing.T, r *rand.Rand, m *MemFS, model map[string]string, i int) {
	names := slices.Sorted(maps.Keys(model))
	switch op := r.IntN(3); {
	case op == 0 || len(names) == 0:
		name := fmt.Sprintf("/d/new%d", i)
		f := mustCreate(t, m, name)
		mustWrite(t, f, name)
		mustSync(t, f)
		mustClose(t, f)
		model[name] = name
	case op == 1:
		from, to := names[r.IntN(len(names))], fmt.Sprintf("/d/f%d", r.IntN(4))
		mustRename(t, m, from, to)
		if from != to {
			model[to] = model[from]
			delete(model, from)
		}
	default:
		name := names[r.IntN(len(names))]
		mustRemove(t, m, name)
		delete(model, name)
	}
}

// TestCrashCloneDeterministic checks that a seed reproduces its image.
func TestCrashCloneDeterministic(t *testing.T) {
	m := NewMem()
	durableDir(t, m, "/d")
	for i := range 5 {
		f := mustCreate(t, m, fmt.Sprintf("/d/f%d", i))
		for j := range 5 {
			mustWrite(t, f, fmt.Sprintf("write %d.%d;", i, j))
		}
	}
	img := func() map[string]string {
		return m.CrashClone(CrashOptions{Rand: rand.New(rand.NewPCG(7, 7)), TearLast: true}).Tree()
	}
	first := img()
	for range 5 {
		if got := img(); !maps.Equal(got, first) {
			t.Fatalf("same seed, different image:\n%q\n%q", got, first)
		}
	}
}

// TestSyncHook checks that the hook sees every sync in order and that a
// CrashClone taken inside it holds exactly what that sync made durable.
func TestSyncHook(t *testing.T) {
	m := NewMem()
	images := map[int64]map[string]string{}
	var order []int64
	m.SetSyncHook(func(n int64) {
		order = append(order, n)
		images[n] = m.CrashClone(CrashOptions{}).Tree()
	})
	f := mustCreate(t, m, "/log")
	mustSyncDir(t, m, "/") // sync 1: empty log
	var want strings.Builder
	for i := range 10 {
		rec := fmt.Sprintf("rec%d;", i)
		mustWrite(t, f, rec)
		want.WriteString(rec)
		mustSync(t, f) // sync i+2: i+1 records
		// Unsynced and then undone: no image may show it.
		if _, err := f.WriteAt([]byte("unsynced;"), int64(want.Len())); err != nil {
			t.Fatal(err)
		}
		mustTruncate(t, f, int64(want.Len()))
	}
	if err := m.SyncDir("/missing"); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
	m.SetSyncHook(nil)
	mustSync(t, f) // not seen by the hook, but counted

	if got := m.SyncCount(); got != 12 {
		t.Errorf("SyncCount = %d, want 12 (failed syncs do not count)", got)
	}
	if !slices.Equal(order, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Errorf("hook calls = %v", order)
	}
	for n := int64(1); n <= 11; n++ {
		recs := ""
		for i := range n - 1 {
			recs += fmt.Sprintf("rec%d;", i)
		}
		if got := images[n]["/log"]; got != recs {
			t.Errorf("image at sync %d: /log = %q, want %q", n, got, recs)
		}
	}
}

// TestCrashAtEverySync is the pattern crash tests use: run a workload once to
// count its syncs, then rerun it crashing at each one, and check that every
// image holds what had been acknowledged and nothing torn. The workload
// appends acknowledged records to a log and publishes a manifest atomically.
func TestCrashAtEverySync(t *testing.T) {
	probe := NewMem()
	crashWorkload(t, probe, nil)
	total := probe.SyncCount()
	if total < 10 {
		t.Fatalf("workload made only %d syncs", total)
	}
	for at := int64(1); at <= total; at++ {
		m := NewMem()
		var img *MemFS
		var acked, ackedAtCrash int
		m.SetSyncHook(func(n int64) {
			if n == at {
				img = m.CrashClone(CrashOptions{})
				ackedAtCrash = acked
			}
		})
		crashWorkload(t, m, func(n int) { acked = n })
		checkCrashImage(t, img, at, ackedAtCrash)
	}
}

// crashWorkload appends 5 records, acknowledging each after its Sync, and
// republishes /manifest (temp file, Sync, Rename, SyncDir) after each.
func crashWorkload(t *testing.T, m *MemFS, ack func(n int)) {
	mustMkdirAll(t, m, "/db")
	mustSyncDir(t, m, "/")
	log := mustCreate(t, m, "/db/log")
	mustSyncDir(t, m, "/db")
	for i := 1; i <= 5; i++ {
		mustWrite(t, log, fmt.Sprintf("r%d;", i))
		mustSync(t, log)
		if ack != nil {
			ack(i)
		}
		tmp := mustCreate(t, m, "/db/manifest.tmp")
		mustWrite(t, tmp, fmt.Sprintf("records=%d", i))
		mustSync(t, tmp)
		mustClose(t, tmp)
		mustRename(t, m, "/db/manifest.tmp", "/db/manifest")
		mustSyncDir(t, m, "/db")
	}
}

// checkCrashImage checks one crash image of crashWorkload: the manifest, if
// any, is whole, and the log holds every acknowledged record and every
// record the manifest names.
func checkCrashImage(t *testing.T, img *MemFS, at int64, acked int) {
	t.Helper()
	if img == nil {
		t.Fatalf("no image at sync %d", at)
	}
	got := img.Tree()
	var named int
	if man, ok := got["/db/manifest"]; ok {
		if _, err := fmt.Sscanf(man, "records=%d", &named); err != nil {
			t.Fatalf("sync %d: torn manifest %q", at, man)
		}
	}
	var want strings.Builder
	for i := 1; i <= max(named, acked); i++ {
		fmt.Fprintf(&want, "r%d;", i)
	}
	if log := got["/db/log"]; !strings.HasPrefix(log, want.String()) {
		t.Errorf("sync %d: log %q lacks records (acked %d, manifest names %d)", at, log, acked, named)
	}
}

// TestMemConcurrent runs creates, writes, syncs, renames, removes, shared
// ReadAt and CrashClones at once; run it with -race.
func TestMemConcurrent(t *testing.T) {
	m := NewMem()
	durableDir(t, m, "/shared")
	shared := durableFile(t, m, "/shared/f", strings.Repeat("s", 4096))
	m.SetSyncHook(func(n int64) {
		if n%16 == 0 { // a hook clone races with the other workers' writes
			m.CrashClone(CrashOptions{})
		}
	})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() { concurrentWorker(t, m, w) })
	}
	for r := range 3 {
		wg.Go(func() { concurrentReader(t, shared, r) })
	}
	wg.Go(func() {
		for i := range 30 {
			img := m.CrashClone(CrashOptions{Rand: rand.New(rand.NewPCG(uint64(i), 3)), TearLast: true})
			img.Tree()
		}
	})
	wg.Wait()
	checkInvariants(t, m)
	got := files(m.CrashClone(CrashOptions{}).Tree())
	for w := range 6 {
		name := fmt.Sprintf("/w%d/final", w)
		if got[name] != strings.Repeat("x", 40) {
			t.Errorf("%s after crash = %q", name, got[name])
		}
	}
}

func concurrentWorker(t *testing.T, m *MemFS, w int) {
	dir := fmt.Sprintf("/w%d", w)
	if err := cmp.Or(m.MkdirAll(dir, 0o755), m.SyncDir("/")); err != nil {
		t.Error(err)
		return
	}
	for i := range 40 {
		tmp := filepath.Join(dir, fmt.Sprintf("tmp%d", i))
		f, err := m.Create(tmp)
		if err != nil {
			t.Error(err)
			return
		}
		_, err = f.Write(bytes.Repeat([]byte("x"), i+1))
		err = cmp.Or(err, f.Sync(), f.Close(),
			m.Rename(tmp, filepath.Join(dir, "final")), m.SyncDir(dir))
		if _, lerr := m.List(dir); err != nil || lerr != nil {
			t.Error(err, lerr)
			return
		}
	}
}

func concurrentReader(t *testing.T, f File, r int) {
	buf := make([]byte, 64)
	for i := range 200 {
		off := int64((i*64 + r) % 4000)
		if _, err := f.ReadAt(buf, off); err != nil || buf[0] != 's' {
			t.Errorf("ReadAt(%d) = %q, %v", off, buf[:1], err)
			return
		}
	}
}

// checkInvariants checks, for every inode reachable in m, that replaying its
// log onto its durable state gives its current state.
func checkInvariants(t *testing.T, m *MemFS) {
	t.Helper()
	m.mu.RLock()
	defer m.mu.RUnlock()
	var walk func(path string, n *inode)
	walk = func(path string, n *inode) {
		if !n.isDir {
			b := bytes.Clone(n.synced)
			for _, op := range n.pending {
				b = op.apply(b)
			}
			if !bytes.Equal(b, n.data) {
				t.Errorf("%s: synced+pending = %q, data = %q", path, b, n.data)
			}
			return
		}
		e := maps.Clone(n.durable)
		for _, op := range n.dirLog {
			op.apply(e)
		}
		if !maps.Equal(e, n.children) {
			t.Errorf("%s: durable+log = %v, children = %v", path, slices.Sorted(maps.Keys(e)), slices.Sorted(maps.Keys(n.children)))
		}
		for name, c := range n.children {
			walk(filepath.Join(path, name), c)
		}
	}
	walk("/", m.root)
}

// files returns the files of a dump, without its directories.
func files(d map[string]string) map[string]string {
	maps.DeleteFunc(d, func(k, _ string) bool { return strings.HasSuffix(k, "/") })
	return d
}

func readAll(t *testing.T, m *MemFS, name string) []byte {
	t.Helper()
	b, err := m.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// durableDir creates dir and its missing parents and syncs the parent of
// every element of dir, so that a crash keeps it.
func durableDir(t *testing.T, m *MemFS, dir string) {
	t.Helper()
	mustMkdirAll(t, m, dir)
	for d := filepath.Clean(dir); d != "/"; d = filepath.Dir(d) {
		mustSyncDir(t, m, filepath.Dir(d))
	}
}

// durableFile creates name holding s with both the bytes and the name
// synced, and returns it open at its end.
func durableFile(t *testing.T, m *MemFS, name, s string) File {
	t.Helper()
	f := mustCreate(t, m, name)
	mustWrite(t, f, s)
	mustSync(t, f)
	mustSyncDir(t, m, filepath.Dir(name))
	return f
}

func mustSync(t *testing.T, f File) {
	t.Helper()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func mustSyncDir(t *testing.T, fs FS, dir string) {
	t.Helper()
	if err := fs.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
}

func mustRename(t *testing.T, fs FS, from, to string) {
	t.Helper()
	if err := fs.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func mustRemove(t *testing.T, fs FS, name string) {
	t.Helper()
	if err := fs.Remove(name); err != nil {
		t.Fatal(err)
	}
}

func mustTruncate(t *testing.T, f File, size int64) {
	t.Helper()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

func mustPreallocate(t *testing.T, f File, size int64) {
	t.Helper()
	if err := f.Preallocate(size); err != nil {
		t.Fatal(err)
	}
}
