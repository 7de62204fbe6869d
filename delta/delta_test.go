package delta

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kvtool/kvtool/checkpoint"
	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/manifest"
	"github.com/kvtool/kvtool/table"
	"github.com/kvtool/kvtool/vfs"
)

func TestWriteOpenRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	fs := vfs.NewMem()
	if err := format.MkdirAllDurable(fs, format.SnapDir); err != nil {
		t.Fatal(err)
	}
	m := randModel(rng, 500, 2000)
	dirty := step(rng, m, 800, 2000)
	dirty = append(dirty, dirty[:50]...) // duplicates
	keep := slices.Clone(dirty)
	meta := Meta{StoreID: storeID, From: 10, To: 20, Term: 3, Parent: format.CheckpointName(10)}
	info, err := Write(fs, format.SnapDir, meta, dirty, m, Options{BlockSize: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dirty, keep) {
		t.Fatal("Write modified the caller's keys")
	}
	want := expectedEntries(dirty, m)
	if info.Name != format.DeltaName(10, 20) || info.Meta != meta || info.Keys() != uint64(len(want)) {
		t.Fatalf("info %+v, want %d keys", info, len(want))
	}
	if ref := info.Ref(); ref.FromIndex != 10 || ref.Index != 20 || ref.Name != info.Name || ref.Checksum != info.Checksum || ref.Size != info.Size {
		t.Fatalf("ref %+v", ref)
	}
	r, err := Open(fs, info.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Meta() != meta || r.Info() != info {
		t.Fatalf("Open: %+v %+v", r.Meta(), r.Info())
	}
	var got []string
	err = r.ForEach(func(kind format.EntryKind, k, v []byte) error {
		got = append(got, fmt.Sprintf("%s %s=%s", kind, k, v))
		return nil
	})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ForEach: %v\n got %v\nwant %v", err, got, want)
	}
	for _, k := range dirty {
		v, kind, found, err := r.Get([]byte(k))
		mv, present := m[k]
		if err != nil || !found || (kind == format.EntryPut) != present || !bytes.Equal(v, mv) {
			t.Fatalf("Get(%q) = %q %v %v %v", k, v, kind, found, err)
		}
	}
	if _, _, found, _ := r.Get([]byte("not dirty")); found {
		t.Fatal("Get of an unchanged key found something")
	}
	if rep, err := Verify(fs, info.Path, table.VerifyOptions{}); err != nil || !rep.OK() {
		t.Fatalf("Verify: %v %v", err, rep.Err())
	}
}

// expectedEntries is what a delta of dirty over m must hold, as strings.
func expectedEntries(dirty []string, m model) []string {
	keys := slices.Compact(slices.Sorted(slices.Values(dirty)))
	var out []string
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out = append(out, fmt.Sprintf("put %s=%s", k, v))
		} else {
			out = append(out, fmt.Sprintf("delete %s=", k))
		}
	}
	return out
}

func TestWriteRejectsBadMeta(t *testing.T) {
	fs := vfs.NewMem()
	for _, m := range []Meta{
		{From: 5, To: 5, Parent: "p"},
		{From: 6, To: 5, Parent: "p"},
		{From: 5, To: 6, Parent: "snap/p"},
		{From: 5, To: 6},
		{From: 5, To: 6, Parent: strings.Repeat("p", MaxParentLen+1)},
	} {
		if _, err := Write(fs, ".", m, nil, model{}, Options{}); !errors.Is(err, ErrBadMeta) {
			t.Fatalf("Write(%+v) = %v", m, err)
		}
	}
	if names, _ := fs.List("."); len(names) != 0 {
		t.Fatalf("left %v", names)
	}
	// The empty state at 0 needs no parent; an empty dirty set is a valid delta.
	info, err := Write(fs, ".", Meta{From: 0, To: 3}, nil, model{}, Options{})
	if err != nil || info.Keys() != 0 {
		t.Fatalf("empty delta: %+v, %v", info, err)
	}
}

func TestOpenChecksHeaderFooterAndName(t *testing.T) {
	fs := vfs.NewMem()
	meta := Meta{StoreID: storeID, From: 1, To: 9, Term: 1, Parent: "p"}
	info, err := Write(fs, ".", meta, []string{"a"}, model{"a": nil}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Rename(info.Path, format.DeltaName(1, 8)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(fs, format.DeltaName(1, 8)); format.AsCorruption(err) == nil {
		t.Fatalf("Open of a renamed delta = %v", err)
	}
	if rep, err := Verify(fs, format.DeltaName(1, 8), table.VerifyOptions{}); err != nil || rep.OK() {
		t.Fatalf("Verify of a renamed delta = %v %v", err, rep)
	}
	ck, err := checkpoint.Write(fs, ".", checkpoint.Meta{Index: 4}, model{}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(fs, ck.Path); format.AsCorruption(err) == nil {
		t.Fatalf("Open of a checkpoint as a delta = %v", err)
	}
	if rep, err := Verify(fs, ck.Path, table.VerifyOptions{}); err != nil || rep.OK() {
		t.Fatalf("Verify of a checkpoint as a delta = %v %v", err, rep)
	}
}

func TestList(t *testing.T) {
	c := buildChain(t, rand.New(rand.NewPCG(2, 2)), 3, 50, 30, 200, false)
	dir := format.SnapDir
	w, _ := c.fs.Create(snapPath(format.TempName(format.DeltaName(900, 901), 1)))
	w.Write([]byte("partial"))
	w.Close()
	w, _ = c.fs.Create(snapPath(format.DeltaName(901, 902)))
	w.Write([]byte("damaged"))
	w.Close()
	list, err := List(c.fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 4 || list[3].Err == nil || format.AsCorruption(list[3].Err) == nil {
		t.Fatalf("List = %+v", list)
	}
	for i, info := range list[:3] {
		if info.Err != nil || info.Path != c.deltas[i] {
			t.Fatalf("List[%d] = %+v, want %s", i, info, c.deltas[i])
		}
	}
}

func TestCheckLinks(t *testing.T) {
	other := manifest.StoreID{9}
	base := &Link{Name: format.CheckpointName(10), StoreID: storeID, To: 10}
	d := func(from, to uint64, parent string) Link {
		return Link{Name: format.DeltaName(from, to), StoreID: storeID, From: from, To: to, Parent: parent}
	}
	good := []Link{d(10, 20, base.Name), d(20, 25, format.DeltaName(10, 20)), d(25, 40, format.DeltaName(20, 25))}
	if err := CheckLinks(base, good); err != nil {
		t.Fatal(err)
	}
	if err := CheckLinks(nil, []Link{d(0, 5, "")}); err != nil {
		t.Fatal(err)
	}
	foreign := slices.Clone(good)
	foreign[2].StoreID = other
	renamed := slices.Clone(good)
	renamed[1].Name = format.DeltaName(20, 26)
	renamed[2].Parent = renamed[1].Name
	for _, c := range []struct {
		name   string
		base   *Link
		deltas []Link
		want   []string // substrings of the error, each naming its file
	}{
		{"gap", base, []Link{d(10, 20, base.Name), d(21, 30, format.DeltaName(10, 20))}, []string{format.DeltaName(21, 30) + ": gap"}},
		{"overlap", base, []Link{d(10, 20, base.Name), d(15, 30, format.DeltaName(10, 20))}, []string{format.DeltaName(15, 30) + ": overlap"}},
		{"base-gap", base, []Link{d(11, 20, base.Name)}, []string{format.DeltaName(11, 20) + ": gap"}},
		{"no-base-gap", nil, []Link{d(3, 20, "")}, []string{format.DeltaName(3, 20) + ": gap: covers (3, 20] but the empty state ends at 0"}},
		{"wrong-parent", base, []Link{d(10, 20, base.Name), d(20, 30, "x")}, []string{format.DeltaName(20, 30) + `: parent is "x"`}},
		{"foreign-store", base, foreign, []string{format.DeltaName(25, 40) + ": store " + other.String()}},
		{"name-mismatch", base, renamed, []string{format.DeltaName(20, 26) + ": name says (20, 26], contents (20, 25]"}},
		{"empty-range", base, []Link{d(10, 10, base.Name)}, []string{"empty index range"}},
		{"two-faults", base, []Link{d(12, 20, "x"), d(19, 30, "y")}, []string{"gap", "overlap", `parent is "x"`, `parent is "y"`}},
	} {
		err := CheckLinks(c.base, c.deltas)
		if !errors.Is(err, ErrChain) {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
}

func TestCheckChainRefs(t *testing.T) {
	ref := func(from, to uint64) manifest.FileRef {
		return manifest.FileRef{Name: format.DeltaName(from, to), FromIndex: from, Index: to}
	}
	base := &manifest.FileRef{Name: format.CheckpointName(10), Index: 10}
	if err := CheckChain(base, []manifest.FileRef{ref(10, 20), ref(20, 30)}); err != nil {
		t.Fatal(err)
	}
	if err := CheckChain(nil, []manifest.FileRef{ref(0, 20)}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		base   *manifest.FileRef
		deltas []manifest.FileRef
		want   string
	}{
		"gap":      {base, []manifest.FileRef{ref(10, 20), ref(22, 30)}, format.DeltaName(22, 30) + ": gap"},
		"overlap":  {base, []manifest.FileRef{ref(10, 20), ref(19, 30)}, format.DeltaName(19, 30) + ": overlap"},
		"base":     {&manifest.FileRef{Name: format.CheckpointName(9), Index: 10}, nil, format.CheckpointName(9) + ": name says index 9"},
		"renamed":  {base, []manifest.FileRef{{Name: format.DeltaName(10, 21), FromIndex: 10, Index: 20}}, "name says (10, 21]"},
		"no-base":  {nil, []manifest.FileRef{ref(5, 20)}, "gap"},
		"inverted": {base, []manifest.FileRef{ref(10, 10)}, "empty index range"},
	} {
		if err := CheckChain(c.base, c.deltas); !errors.Is(err, ErrChain) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

func TestCheckFiles(t *testing.T) {
	c := buildChain(t, rand.New(rand.NewPCG(3, 3)), 3, 50, 30, 200, false)
	names := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, strings.TrimPrefix(p, format.SnapDir+"/"))
		}
		return out
	}
	base := strings.TrimPrefix(c.base, format.SnapDir+"/")
	if err := CheckFiles(c.fs, format.SnapDir, base, names(c.deltas)); err != nil {
		t.Fatal(err)
	}
	skipped := names([]string{c.deltas[0], c.deltas[2]})
	if err := CheckFiles(c.fs, format.SnapDir, base, skipped); !errors.Is(err, ErrChain) || !strings.Contains(err.Error(), skipped[1]+": gap") {
		t.Fatalf("chain with a missing delta: %v", err)
	}
	// A delta of another store with the right range and parent.
	d1 := c.deltas[1]
	r, err := Open(c.fs, d1)
	if err != nil {
		t.Fatal(err)
	}
	meta := r.Meta()
	r.Close()
	meta.StoreID = manifest.StoreID{42}
	if _, err := Write(c.fs, format.SnapDir, meta, []string{"x"}, model{}, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := CheckFiles(c.fs, format.SnapDir, base, names(c.deltas)); !errors.Is(err, ErrChain) || !strings.Contains(err.Error(), "store "+meta.StoreID.String()) {
		t.Fatalf("chain with a foreign delta: %v", err)
	}
	if err := CheckFiles(c.fs, format.SnapDir, base, []string{"absent.delta"}); !vfs.IsNotExist(err) {
		t.Fatalf("chain with an absent file: %v", err)
	}
}

func TestMergeEquivalence(t *testing.T) {
	for seed := uint64(0); seed < 12; seed++ {
		rng := rand.New(rand.NewPCG(seed, 4))
		n := 1 + rng.IntN(6)
		noBase := seed%4 == 3
		c := buildChain(t, rng, n, 300+rng.IntN(700), 50+rng.IntN(400), 1500, noBase)
		info, err := Merge(c.fs, format.SnapDir, c.base, c.deltas, MergeOptions{Options: Options{BlockSize: 1 << 10, Uncompressed: seed%3 != 0}, Shards: 4})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		want := c.states[n]
		got := readCheckpoint(t, c.fs, info.Path)
		if !equalModels(got, want) || info.StateHash != want.hash() || info.Keys != uint64(len(want)) {
			t.Fatalf("seed %d: merged %d keys hash %016x, want %d keys hash %016x", seed, len(got), info.StateHash, len(want), want.hash())
		}
		last := c.deltas[n-1]
		r, _ := Open(c.fs, last)
		lm := r.Meta()
		r.Close()
		if info.Meta.Index != lm.To || info.Meta.Term != lm.Term || info.Meta.StoreID != storeID || info.Meta.Shards != 4 || info.Name != format.CheckpointName(lm.To) {
			t.Fatalf("seed %d: merged meta %+v, last delta %+v", seed, info.Meta, lm)
		}
		if rep, err := checkpoint.Verify(c.fs, info.Path, table.VerifyOptions{}); err != nil || !rep.OK() {
			t.Fatalf("seed %d: merged checkpoint does not verify: %v %v", seed, err, rep.Err())
		}
	}
}

// TestMergeOneEqualsApply checks that merging a chain of one delta gives
// the state that applying it with ForEach (as replay does) gives.
func TestMergeOneEqualsApply(t *testing.T) {
	c := buildChain(t, rand.New(rand.NewPCG(5, 5)), 1, 400, 300, 800, false)
	applied := readCheckpoint(t, c.fs, c.base)
	r, err := Open(c.fs, c.deltas[0])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = r.ForEach(func(kind format.EntryKind, k, v []byte) error {
		if kind == format.EntryDelete {
			delete(applied, string(k))
		} else {
			applied[string(k)] = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := Merge(c.fs, format.SnapDir, c.base, c.deltas, MergeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if merged := readCheckpoint(t, c.fs, info.Path); !equalModels(merged, applied) || !equalModels(applied, c.states[1]) {
		t.Fatal("merging one delta differs from applying it")
	}
}

func TestMergeRejectsBrokenChains(t *testing.T) {
	c := buildChain(t, rand.New(rand.NewPCG(6, 6)), 3, 100, 50, 300, false)
	before, _ := c.fs.List(format.SnapDir)
	for name, deltas := range map[string][]string{
		"gap":      {c.deltas[0], c.deltas[2]},
		"reversed": {c.deltas[1], c.deltas[0]},
	} {
		if _, err := Merge(c.fs, format.SnapDir, c.base, deltas, MergeOptions{}); !errors.Is(err, ErrChain) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := Merge(c.fs, format.SnapDir, "", c.deltas, MergeOptions{}); !errors.Is(err, ErrChain) {
		t.Fatalf("without the base: %v", err)
	}
	if _, err := Merge(c.fs, format.SnapDir, c.base, nil, MergeOptions{}); !errors.Is(err, ErrNothingToMerge) {
		t.Fatalf("no deltas: %v", err)
	}
	if after, _ := c.fs.List(format.SnapDir); !slices.Equal(before, after) {
		t.Fatalf("refused merges changed the directory: %v -> %v", before, after)
	}
}

func TestMergeReportsDamagedInput(t *testing.T) {
	c := buildChain(t, rand.New(rand.NewPCG(7, 7)), 2, 400, 200, 1000, false)
	f, err := c.fs.OpenReadWrite(c.deltas[1])
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, 200) // inside the first block
	f.Close()
	before, _ := c.fs.List(format.SnapDir)
	_, err = Merge(c.fs, format.SnapDir, c.base, c.deltas, MergeOptions{})
	if ce := format.AsCorruption(err); ce == nil || ce.Path != c.deltas[1] {
		t.Fatalf("merge over a damaged delta = %v", err)
	}
	if after, _ := c.fs.List(format.SnapDir); !slices.Equal(before, after) {
		t.Fatalf("failed merge changed the directory: %v -> %v", before, after)
	}
}
